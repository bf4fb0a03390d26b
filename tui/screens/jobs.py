"""All jobs with their history (the daemon's journal: every client's jobs, finished, failed,
cancelled or interrupted), and one job in detail: its phases with timings and the calls it made.

The detail follows the job's events: the header and phases from its :class:`JobView`, the call
log from its ``call`` events (each with its time), fetched incrementally and bounded as the
journal is (the last ``CALL_LOG_SIZE`` calls; the count of all of them is the view's). A job
known only from the daemon's list has its events fetched when its detail opens.
"""
from __future__ import annotations

from datetime import datetime, timezone

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label

from engine.jobs import CALL_LOG_SIZE, EventKind, JobEvent, JobView
from tui.format import human_duration
from tui.widgets.jobs import JobsPanel, ask_to_cancel, job_headline, job_summary
from tui.widgets.keys import KeyTable

ALL_ROWS = 200  # the jobs screen's rows (the daemon's journal keeps up to 500 jobs)


class JobsScreen(Screen[None]):
    HELP_TITLE = "jobs"
    CSS_PATH = "jobs.tcss"
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield JobsPanel(max_rows=ALL_ROWS, id="all-jobs")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(JobsPanel).focus()

    def on_jobs_panel_open(self, message: JobsPanel.Open) -> None:
        self.app.push_screen(JobDetailScreen(message.job_id))

    def on_jobs_panel_open_snapshot(self, message: JobsPanel.OpenSnapshot) -> None:
        from tui.screens.store import StoreScreen

        self.app.push_screen(StoreScreen(snapshot_id=message.snapshot_id))


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S")


class JobDetailScreen(Screen[None]):
    HELP_TITLE = "job detail"
    CSS_PATH = "jobs.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("x", "cancel", "Cancel job"),
        Binding("tab", "focus_next", "Next pane", show=False),
    ]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self._seen = 0  # the last event whose call is in the table
        self._view: JobView | None = None
        self.add_class("jobs-aware")

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        with Vertical(id="job-head"):
            yield Label(id="headline")
            yield Label(id="summary")
            yield Label(id="message")
        yield KeyTable(id="phases", cursor_type="row")
        yield KeyTable(id="calls", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        phases = self.query_one("#phases", DataTable)
        phases.border_title = "Phases"
        phases.add_columns("phase", "started", "took")
        calls = self.query_one("#calls", DataTable)
        calls.border_title = "Scaleway and S3 calls"
        calls.add_columns("time", "method", "status", "ms", "path")
        self.jobs_changed({self.job_id})
        calls.focus()
        # a finished job from the daemon's list: its phases and calls come with its events
        self.run_worker(self.app.jobs.fetch(self.job_id),  # type: ignore[attr-defined]
                        name="read the job's journal", group="job-fetch", exit_on_error=False)

    def jobs_changed(self, ids: set[str]) -> None:
        if self.job_id not in ids:
            return
        jobs = self.app.jobs  # type: ignore[attr-defined]
        try:
            view, events = jobs.view(self.job_id), jobs.events(self.job_id, self._seen)
        except KeyError:  # forgotten (trimmed from memory or the journal): keep what is shown
            return
        if self._view is None or self._view.finished != view.finished:
            self.refresh_bindings()
        self._view = view
        self.query_one("#headline", Label).update(job_headline(view))
        self.query_one("#summary", Label).update(job_summary(view, bar_width=self._bar_width()))
        message = self.query_one("#message", Label)
        message.update(Text(view.message))  # from the engine or an API: never markup
        message.display = bool(view.message) and view.error is None
        phases = self.query_one("#phases", DataTable)
        phases.clear()
        now = self.app.clock()  # type: ignore[attr-defined]
        for rec in list(view.phases):
            took = (rec.ended or now) - rec.started
            mark = "" if rec.ended else " …"
            phases.add_row(Text(rec.name), _clock(rec.started), human_duration(took) + mark)
        self._add_calls(events)

    def _add_calls(self, events: list[JobEvent]) -> None:
        calls = self.query_one("#calls", DataTable)
        follow = calls.cursor_row >= calls.row_count - 1  # at the tail (or empty): follow it
        for event in events:
            self._seen = max(self._seen, event.seq)
            if event.kind != EventKind.CALL.value:
                continue
            call = event.data
            calls.add_row(_clock(event.time), Text(str(call.get("method", ""))),
                          Text(str(call.get("status", ""))),
                          Text(f"{float(call.get('ms') or 0):.0f}", justify="right"),
                          Text(str(call.get("path", ""))), key=str(event.seq))
        while calls.row_count > CALL_LOG_SIZE:  # bounded, as the journal is
            calls.remove_row(calls.coordinate_to_cell_key((0, 0)).row_key)
        if follow and calls.row_count:
            calls.move_cursor(row=calls.row_count - 1)
        total = self._view.calls.total if self._view is not None else calls.row_count
        calls.border_subtitle = (f"{total} calls" if total <= calls.row_count else
                                 f"last {calls.row_count} of {total} calls")

    def _bar_width(self) -> int:
        return 24 if self.size.width >= 110 else 10

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":  # offered only while the job runs
            return self._view is not None and not self._view.finished
        return True

    def action_cancel(self) -> None:
        if self._view is not None and not self._view.finished:
            ask_to_cancel(self.app, self._view)
