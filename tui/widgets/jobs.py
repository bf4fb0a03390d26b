"""The jobs panel: one live line per running or recent job (the app's ``jobs``: the daemon's,
from every client, or this process's), its counts in the title.

Rows are refreshed by the App's 10 Hz pump (``jobs_changed``), never per event. The bar takes
the width the line leaves it. enter on a finished backup opens its snapshot in the store (a
finished restore: its new volume in the inventory); on any other job, its detail (also `i`).
`x` cancels a running job once confirmed, and is offered only while the job runs.
"""
from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.widgets import Label, ListItem, ListView, Static

from engine.jobs import DONE, JobView
from tui.format import (JOB_STATUS, bar, dedup_ratio, human_bytes, human_duration, human_rate,
                        in_app_terms, job_status)
from tui.messages import RevealVolume

MAX_ROWS = 30


def stored_bytes(view: JobView) -> int | None:
    """New bytes the store kept: a finished backup's own figure (the last live one can predate
    the packs written at the end), else the latest progress counter, else nothing yet."""
    if view.kind == "backup" and view.state == DONE and view.result is not None:
        return int(view.result["stored_bytes"])  # type: ignore[arg-type]
    live = view.counters.get("stored_bytes")
    return int(live) if isinstance(live, int) else None


def job_summary(view: JobView, bar_width: int = 16) -> Content:
    """Second line of a job row."""
    if not view.finished:
        total = view.bytes_total
        frac = view.bytes_done / total if total else 0.0
        pct = f"{frac:4.0%}" if total else "  … "
        size = (f"{human_bytes(view.bytes_done)} / {human_bytes(total)}" if total
                else human_bytes(view.bytes_done) if view.bytes_done else "")
        eta = human_duration(view.eta) if view.eta is not None else "–"
        parts = [bar(frac, bar_width), pct, size, human_rate(view.rate), f"ETA {eta}"]
        if view.kind == "backup":
            # nothing stored yet means no pack is written yet, not infinite dedup
            parts.append(f"dedup {dedup_ratio(view.bytes_done, stored_bytes(view) or None)}")
        return Content("  ".join(p for p in parts if p))
    took = human_duration((view.ended or view.created) - view.created)
    if view.state == DONE and view.result is not None:
        if view.kind == "restore":
            return Content(f"took {took} · new volume {view.result['volume_id']}")
        if view.kind == "backup":
            read = int(view.result["bytes"])  # type: ignore[arg-type]
            stored = stored_bytes(view)
            return Content(f"took {took} · read {human_bytes(read)} · new "
                           f"{human_bytes(stored)} · dedup {dedup_ratio(read, stored)}")
        return Content(f"took {took}")
    return Content(f"after {took}: {in_app_terms(view.error.message) if view.error else view.state}")


def job_line(view: JobView, width: int) -> Content:
    """The whole job on one line of ``width`` cells: its state and title, then the bar (as wide
    as the rest leaves it) and figures; the least needed figures go first when space is short."""
    head = job_headline(view)
    if view.finished:
        figures = job_summary(view).plain.split(" · ")
        snapshot = snapshot_of(view)
        if snapshot:
            figures.append(f"→ snapshot {snapshot[:8]}")
        # short of room: the figures after "took" go (read, new, dedup); the link stays
        while len(figures) > 2 and len(head.plain) + len(" · ".join(figures)) + 2 > width:
            figures.pop(1)
        return Content.assemble(head, "  ", (" · ".join(figures), "$text-muted"))
    total = view.bytes_total
    frac = view.bytes_done / total if total else 0.0
    figures = [f"{frac:4.0%}" if total else "  … ",
               (f"{human_bytes(view.bytes_done)}/{human_bytes(total)}" if total
                else human_bytes(view.bytes_done) if view.bytes_done else ""),
               f"ETA {human_duration(view.eta)}" if view.eta is not None else "",
               human_rate(view.rate) if view.rate > 0 else ""]
    if view.kind == "backup":
        figures.append(f"dedup {dedup_ratio(view.bytes_done, stored_bytes(view) or None)}")
    figures = [f for f in figures if f]
    while True:
        tail = "  ".join(figures)
        room = width - len(head.plain) - len(tail) - 4
        if room >= 6 or len(figures) <= 1:
            break
        figures.pop()  # dedup, then rate, then ETA, then size: the percentage stays
    parts: list[str | Content | tuple[str, str]] = [head, "  "]
    if room >= 4:
        parts += [bar(frac, min(room, 40)), "  "]
    parts.append((tail, "$text-muted"))
    return Content.assemble(*parts)


def snapshot_of(view: JobView) -> str:
    """The store snapshot a finished backup made ("" for any other job)."""
    if view.kind == "backup" and view.state == DONE and view.result is not None:
        return str(view.result.get("snapshot") or "")
    return ""


def counts(views: list[JobView]) -> str:
    """'1 running · 3 done · 1 failed': each state's count, in the order of JOB_STATUS."""
    seen: dict[str, int] = {}
    for view in views:
        seen[view.state] = seen.get(view.state, 0) + 1
    return " · ".join(f"{seen[state]} {word}" for state, (_, word, _) in JOB_STATUS.items()
                      if seen.get(state))


def job_headline(view: JobView) -> Content:
    phase = f" · {view.phase}" if view.phase and not view.finished else ""
    return Content.assemble(job_status(view.state), "  ", (view.title + phase, "bold"))


class JobRow(ListItem):
    """One job; ``view`` is replaced by the newest at each refresh."""

    def __init__(self, view: JobView) -> None:
        super().__init__()
        self.view = view
        self.job_id = view.id
        self.dropped = False  # being removed (removal completes later)
        self._drawn = False  # its labels exist (from on_mount on)

    def compose(self) -> ComposeResult:
        yield Label(classes="line")

    def refresh_job(self, view: JobView | None = None) -> None:
        self.view = view or self.view
        if not self._drawn:  # just inserted: on_mount draws it
            return
        width = self.content_size.width or self.app.size.width - 4
        self.query_one(".line", Label).update(job_line(self.view, width))

    def on_mount(self) -> None:
        self._drawn = True
        self.refresh_job()

    def on_resize(self) -> None:
        self.refresh_job()


class JobsPanel(ListView):
    """Focusable list of jobs; enter opens the job's detail."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open"),
        Binding("i", "detail", "Job detail"),
        Binding("x", "cancel_job", "Cancel job"),
        Binding("g,home", "first", "Top", show=False),
        Binding("G,end", "last", "Bottom", show=False),
        Binding("right,l", "select_cursor", "Open", show=False),
    ]

    class Open(Message):
        """Show this job's detail."""
        def __init__(self, job_id: str) -> None:
            super().__init__()
            self.job_id = job_id

    class OpenSnapshot(Message):
        """Show this snapshot (a finished backup's) in the store."""
        def __init__(self, snapshot_id: str) -> None:
            super().__init__()
            self.snapshot_id = snapshot_id

    def __init__(self, max_rows: int = MAX_ROWS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_rows = max_rows
        self.add_class("jobs-aware")
        self.border_title = "Jobs"

    def on_mount(self) -> None:
        self.rebuild()

    def _views(self) -> list[JobView]:
        return self.app.jobs.views()  # type: ignore[attr-defined]

    def _count(self, every: list[JobView]) -> None:
        shown = min(len(every), self.max_rows)
        self.border_subtitle = f"newest {shown} of {len(every)}" if len(every) > shown else ""
        self.border_title = " · ".join(p for p in ("Jobs", counts(every)) if p)

    def rebuild(self) -> None:
        every = self._views()
        views = every[:self.max_rows]
        self._count(every)
        for row in self.query(JobRow):
            row.dropped = True
        self.clear()
        if not views:
            self.append(ListItem(Static("no jobs yet — mark volumes with space, then b"),
                                 classes="no-jobs", disabled=True))
            return
        self.extend([JobRow(view) for view in views])

    def _rows(self) -> dict[str, JobRow]:
        """The rows shown, in order."""
        return {row.job_id: row for row in self.query(JobRow) if not row.dropped}

    def jobs_changed(self, ids: set[str]) -> None:
        rows = self._rows()
        every = self._views()
        self._count(every)
        views = {v.id: v for v in every[:self.max_rows]}
        if list(views) != list(rows) and not self._shift(list(views), list(rows), views):
            index = self.index  # a job came or went in the middle: draw them all again
            self.rebuild()
            self.index = index if index is not None else 0
            return
        rows = self._rows()
        for job_id in ids:
            if job_id in rows:
                rows[job_id].refresh_job(views[job_id])
        self.refresh_bindings()  # a job that ended is no longer cancellable

    def _shift(self, wanted: list[str], shown: list[str], views: dict[str, JobView]) -> bool:
        """New jobs on top, the oldest rows falling off the end: the usual change, made
        without mounting every row again (hundreds on the jobs screen). False otherwise."""
        known = set(shown)
        fresh = [job_id for job_id in wanted if job_id not in known]
        kept = wanted[len(fresh):]
        if not shown or wanted[:len(fresh)] != fresh or kept != shown[:len(kept)]:
            return False
        rows = self._rows()
        for job_id in shown[len(kept):]:
            rows[job_id].dropped = True
            rows[job_id].remove()
        if fresh:
            index = self.index
            self.insert(0, [JobRow(views[job_id]) for job_id in fresh])
            if index is not None:  # the same job stays highlighted
                self.index = min(index + len(fresh), len(wanted) - 1)
        return True

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        if not isinstance(event.item, JobRow):
            return
        view = event.item.view
        snapshot = snapshot_of(view)
        if snapshot:
            self.post_message(self.OpenSnapshot(snapshot))
        elif view.kind == "restore" and view.state == DONE and view.result is not None:
            r = view.result
            self.post_message(RevealVolume(str(r["project_id"]), str(r["zone"]),
                                           str(r["volume_id"])))
        else:
            self.post_message(self.Open(event.item.job_id))

    def on_list_view_highlighted(self, event: ListView.Highlighted) -> None:
        self.refresh_bindings()

    def action_detail(self) -> None:
        item = self.highlighted_child
        if isinstance(item, JobRow):
            self.post_message(self.Open(item.job_id))

    def action_first(self) -> None:
        if len(self):
            self.index = 0

    def action_last(self) -> None:
        if len(self):
            self.index = len(self) - 1

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`x` only on a job that still runs; `i` only on a job."""
        item = self.highlighted_child
        if action == "cancel_job":
            return isinstance(item, JobRow) and not item.view.finished
        if action == "detail":
            return isinstance(item, JobRow)
        return True

    def action_cancel_job(self) -> None:
        item = self.highlighted_child
        if not isinstance(item, JobRow) or item.view.finished:
            return
        ask_to_cancel(self.app, item.view)


def ask_to_cancel(app: App[object], view: JobView) -> None:
    """Cancelling loses the work done so far: asked first, saying what stays (the words the
    quit question uses)."""
    from tui.screens.confirm import (BACKUP_CANCELLED, RESTORE_CANCELLED,
                                     RESTORE_CANCELLED_LATE, ConfirmScreen)

    def decided(yes: bool | None) -> None:
        if yes:
            app.cancel_job(view.id)  # type: ignore[attr-defined]

    if view.kind == "restore":
        late = view.phase == "cleanup"
        detail = (RESTORE_CANCELLED_LATE if late else RESTORE_CANCELLED).format(
            title=view.title or "the restore")
    elif view.kind == "backup":
        detail = BACKUP_CANCELLED
    else:
        detail = "It stops where it is."
    app.push_screen(ConfirmScreen(Content(f"Cancel {view.title}?"), Content(detail),
                                  yes="Cancel the job", no="Let it run"), decided)
