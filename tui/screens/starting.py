"""What the app shows while the demo's sandbox starts (seconds: moto's S3 server imports Flask
and boto): the app is up at once, says what it waits for, and fills in when ready. Keys typed
meanwhile are dropped here, not replayed into the main screen (ctrl+q still quits)."""
from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, LoadingIndicator, Static


class StartingScreen(Screen[None]):
    CSS_PATH = "starting.tcss"

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        with Vertical(id="starting"):
            yield Static(self.what, id="starting-what", markup=False)
            yield LoadingIndicator()
            yield Static("keys typed now are ignored · ctrl+q quits", id="starting-hint")
        yield Footer(compact=True)

    def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
