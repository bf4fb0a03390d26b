"""The command palette's theme choice (ctrl+p → Theme), saved to the settings file as the
settings screen's choice is: it used to last only until the app quit."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.theme import ThemeProvider


class SavedThemeProvider(ThemeProvider):
    """Textual's theme list; choosing one also saves it (``App.choose_theme``)."""

    @property
    def commands(self) -> list[tuple[str, Callable[[], None]]]:
        choose = getattr(self.app, "choose_theme")
        return [(name, partial(choose, name)) for name, _ in super().commands]
