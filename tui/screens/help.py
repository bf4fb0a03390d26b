"""`?`: the bindings of the screen underneath, read from the screen itself."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

GLOBAL_HINTS = [
    ("ctrl+p", "command palette: commands for this screen"),
    (":", "jump to a view: inventory, store, jobs, settings"),
    ("esc", "back"),
]
QUIT_HINT = {True: "quit (running jobs go on in the daemon)",
             False: "quit (asks first while jobs run)"}


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self._under = under

    def compose(self) -> ComposeResult:
        title = getattr(self._under, "HELP_TITLE", None) or type(self._under).__name__
        with Vertical(id="dialog"):
            yield Static(Text(f"Keys — {title}"), id="title")
            yield DataTable(id="keys", cursor_type="row", zebra_stripes=True)
            yield Static("esc closes", id="hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "does")
        seen: set[str] = set()
        # the screen's own keys first (what the footer shows), then moving around
        bindings = sorted(self._under.active_bindings.items(),
                          key=lambda kv: (not kv[1].binding.show, kv[1].node is self.app))
        for key, active in bindings:
            binding = active.binding
            if not binding.description or key in seen:
                continue
            seen.add(key)
            shown = binding.key_display or self.app.get_key_display(binding)
            table.add_row(Text(shown), Text(binding.description))
        detached = self.app.jobs.detached  # type: ignore[attr-defined]
        for key, what in [*GLOBAL_HINTS, ("ctrl+q", QUIT_HINT[detached])]:
            if key not in seen:
                table.add_row(Text(key), Text(what))
        table.focus()
