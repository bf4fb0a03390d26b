"""All jobs, and one job in detail: its phases with timings and every call it made."""
from __future__ import annotations

from datetime import datetime, timezone

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label

from tui.format import human_duration
from tui.widgets.jobs import JobsPanel, job_headline, job_summary


class JobsScreen(Screen[None]):
    HELP_TITLE = "jobs"
    CSS_PATH = "jobs.tcss"
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield JobsPanel(id="all-jobs")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(JobsPanel).focus()

    def on_jobs_panel_open(self, message: JobsPanel.Open) -> None:
        self.app.push_screen(JobDetailScreen(message.job_id))


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
        self._logged = 0
        self.add_class("jobs-aware")

    @property
    def job(self):  # noqa: ANN201
        return self.app.runner.jobs[self.job_id]  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        with Vertical(id="job-head"):
            yield Label(id="headline")
            yield Label(id="summary")
            yield Label(id="message")
        yield DataTable(id="phases", cursor_type="row")
        yield DataTable(id="calls", cursor_type="row", zebra_stripes=True)
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

    def jobs_changed(self, ids: set[str]) -> None:
        if self.job_id not in ids:
            return
        job = self.job
        self.query_one("#headline", Label).update(job_headline(job))
        self.query_one("#summary", Label).update(job_summary(job, bar_width=self._bar_width()))
        message = self.query_one("#message", Label)
        message.update(Text(job.message))  # from the engine or an API: never markup
        message.display = bool(job.message) and not job.error
        phases = self.query_one("#phases", DataTable)
        phases.clear()
        now = self.app.clock()  # type: ignore[attr-defined]
        for rec in job.phases:
            took = (rec.ended or now) - rec.started
            mark = "" if rec.ended else " …"
            phases.add_row(Text(rec.name), _clock(rec.started), human_duration(took) + mark)
        calls = self.query_one("#calls", DataTable)
        for entry in job.log[self._logged:]:
            calls.add_row(_clock(entry.get("time", now)), Text(str(entry.get("method", ""))),
                          Text(str(entry.get("status", ""))),
                          Text(f"{entry.get('ms', 0):.0f}", justify="right"),
                          Text(str(entry.get("path", ""))))
        if len(job.log) > self._logged and calls.cursor_row >= self._logged - 1:
            calls.move_cursor(row=len(job.log) - 1)  # follow the tail unless scrolled back
        self._logged = len(job.log)
        calls.border_subtitle = f"{len(job.log)} calls"

    def _bar_width(self) -> int:
        return 24 if self.size.width >= 110 else 10

    def action_cancel(self) -> None:
        self.app.cancel_job(self.job_id)  # type: ignore[attr-defined]
