"""`d` on a backup: the files added, removed and changed since the volume's previous backup.

Both images are opened and compared in a thread worker (metadata first; content is read only
where size and type agree but the time differs: see ``engine.explore.diff``). Closing the
screen stops the comparison at its next entry. Every path comes from an image someone else
wrote: shown as escaped, literal text.
"""
from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Label
from textual.worker import get_current_worker

from engine.explore import DiffResult, diff
from engine.explore.names import show_hidden
from engine.store import SnapshotInfo
from engine.units import plural
from tui.format import human_bytes, short_time
from tui.widgets.keys import KeyTable


class Stopped(Exception):
    """The screen closed while comparing."""


class DiffScreen(Screen[None]):
    HELP_TITLE = "diff"
    CSS_PATH = "diff.tcss"
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, before: SnapshotInfo, after: SnapshotInfo) -> None:
        super().__init__()
        self.before, self.after = before, after
        self.result: DiffResult | None = None

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        name = self.after.source.get("volume_name") or self.after.name or "volume"
        yield Label(Text(f"{name}: from {self.before.id[:8]} ({short_time(self.before.time)}) "
                         f"to {self.after.id[:8]} ({short_time(self.after.time)})"),
                    id="diff-head")
        yield KeyTable(id="changes", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(KeyTable)
        table.add_columns("", "path", "size", "what changed")
        table.border_title = "Changes"
        table.border_subtitle = "comparing…"
        table.focus()
        self.compare()

    @work(thread=True, group="diff", exit_on_error=False, exclusive=True)
    def compare(self) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        worker = get_current_worker()

        def progress(done: int) -> None:
            if worker.is_cancelled:
                raise Stopped()
            if done % 500 == 0:
                self.app.call_from_thread(self._progress, done)

        try:
            with session.explorer(self.before.id) as a, session.explorer(self.after.id) as b:
                result = diff(a, b, "/", progress)
        except Stopped:
            return
        except Exception as exc:  # an image that cannot be read: said, not a crash
            message = " ".join(str(exc).split()) or type(exc).__name__
            self.app.call_from_thread(self._failed, message)
            return
        self.app.call_from_thread(self._show, result)

    def _progress(self, done: int) -> None:
        self.query_one(KeyTable).border_subtitle = f"comparing… {plural(done, 'entry')}"

    def _failed(self, message: str) -> None:
        table = self.query_one(KeyTable)
        table.border_subtitle = "failed"
        self.notify(f"cannot compare: {message}", severity="error", markup=False, timeout=10)

    def _show(self, result: DiffResult) -> None:
        self.result = result
        table = self.query_one(KeyTable)
        rows = [("+", e.path, human_bytes(e.size) if not e.is_dir else "", "added")
                for e in result.added]
        rows += [("−", e.path, human_bytes(e.size) if not e.is_dir else "", "removed")
                 for e in result.removed]
        rows += [("~", c.path, human_bytes(c.after.size) if not c.after.is_dir else "",
                  ", ".join(c.reasons)) for c in result.changed]
        rows.sort(key=lambda r: r[1])
        table.add_rows([(mark, Text(show_hidden(path)), size, what)
                        for mark, path, size, what in rows])
        table.border_subtitle = (f"+{len(result.added)} added · −{len(result.removed)} removed"
                                 f" · ~{len(result.changed)} changed")
        if result.empty:
            table.border_subtitle = "no differences"
