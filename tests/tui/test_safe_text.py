"""Untrusted names in the explorer: shown literally, hidden characters as the CLI shows them."""
from __future__ import annotations

from engine.explore.names import show_hidden
from tui.screens.explore import safe_text


def test_hidden_characters_use_the_cli_escapes() -> None:
    name = "invoice\u202efdp.exe\x07[bold]x[/bold]"
    shown = safe_text(name)
    assert shown.plain == show_hidden(name)
    assert "\\xe2\\x80\\xae" in shown.plain and "\\x07" in shown.plain  # bidi override, bell
    assert "[bold]" in shown.plain and not shown.spans  # markup stays text
