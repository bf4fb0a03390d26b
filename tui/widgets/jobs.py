"""The jobs panel: one live row per running or recent job.

Rows are refreshed by the App's 10 Hz pump (``jobs_changed``), never per event.
"""
from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.widgets import Label, ListItem, ListView, Static

from engine.jobs import DONE, RUNNING, Job
from tui.format import bar, dedup_ratio, human_bytes, human_duration, human_rate, job_status

MAX_ROWS = 30


def job_stored_bytes(job: Job) -> int | None:
    """New bytes the store kept: the final result's figure once there is one (the last live
    figure can predate the packs written at the end), else the latest progress extras."""
    result = job.result
    for obj in (result, getattr(result, "result", None), getattr(result, "backup", None)):
        if obj is not None and hasattr(obj, "stored_bytes"):
            return int(obj.stored_bytes)
    for key in ("stored_bytes", "stored"):
        if key in job.extra:
            return int(job.extra[key])
    return None


def job_new_volume(job: Job) -> str:
    result = job.result
    for attr in ("volume_id", "new_volume_id"):
        if getattr(result, attr, None):
            return str(getattr(result, attr))
    vol = getattr(result, "volume", None)
    return str(getattr(vol, "id", "") or "")


def job_summary(job: Job, bar_width: int = 16) -> Content:
    """Second line of a job row."""
    if job.state == RUNNING or not job.finished:
        total = job.bytes_total
        frac = job.bytes_done / total if total else 0.0
        pct = f"{frac:4.0%}" if total else "  … "
        size = (f"{human_bytes(job.bytes_done)} / {human_bytes(total)}" if total
                else human_bytes(job.bytes_done) if job.bytes_done else "")
        eta = human_duration(job.eta) if job.eta is not None else "–"
        parts = [bar(frac, bar_width), pct, size, human_rate(job.rate), f"ETA {eta}"]
        if job.kind == "backup":
            # nothing stored yet means no pack is written yet, not infinite dedup
            stored = job_stored_bytes(job) or None
            parts.append(f"dedup {dedup_ratio(job.bytes_done, stored)}")
        return Content("  ".join(p for p in parts if p))
    took = human_duration((job.ended or job.created) - job.created)
    if job.state == DONE:
        if job.kind == "restore":
            return Content(f"took {took} · new volume {job_new_volume(job) or '?'}")
        stored = job_stored_bytes(job)
        read = job.bytes_done or getattr(getattr(job.result, "result", job.result), "bytes", 0)
        return Content(f"took {took} · read {human_bytes(read)} · new "
                       f"{human_bytes(stored)} · dedup {dedup_ratio(read, stored)}")
    return Content(f"after {took}: {job.error or job.state}")


def job_headline(job: Job) -> Content:
    phase = f" · {job.phase}" if job.phase and not job.finished else ""
    return Content.assemble(job_status(job.state), "  ", (job.title + phase, "bold"))


class JobRow(ListItem):
    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job

    def compose(self) -> ComposeResult:
        yield Label(classes="headline")
        yield Label(classes="summary")

    def refresh_job(self) -> None:
        width = 16 if self.app.size.width >= 110 else 8
        self.query_one(".headline", Label).update(job_headline(self.job))
        self.query_one(".summary", Label).update(job_summary(self.job, bar_width=width))

    def on_mount(self) -> None:
        self.refresh_job()


class JobsPanel(ListView):
    """Focusable list of jobs; enter opens the job's detail."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Job detail"),
        Binding("x", "cancel_job", "Cancel job"),
    ]

    class Open(Message):
        def __init__(self, job_id: str) -> None:
            super().__init__()
            self.job_id = job_id

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("jobs-aware")
        self.border_title = "Jobs"

    def on_mount(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        jobs = getattr(self.app, "jobs", lambda: [])()[:MAX_ROWS]
        self.clear()
        if not jobs:
            self.append(ListItem(Static("no jobs yet — mark volumes with space, then b"),
                                 classes="no-jobs", disabled=True))
            return
        self.extend([JobRow(job) for job in jobs])

    def jobs_changed(self, ids: set[str]) -> None:
        rows = {row.job.id: row for row in self.query(JobRow)}
        if any(job_id not in rows for job_id in ids):
            index = self.index
            self.rebuild()
            self.index = index if index is not None else 0
            return
        for job_id in ids:
            rows[job_id].refresh_job()

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, JobRow):
            self.post_message(self.Open(event.item.job.id))

    def action_cancel_job(self) -> None:
        item = self.highlighted_child
        if isinstance(item, JobRow) and not item.job.finished:
            self.app.cancel_job(item.job.id)  # type: ignore[attr-defined]
