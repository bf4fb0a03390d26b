"""Run a command's jobs and show them as they go: a line per phase, a live bar on a terminal.

Commands never touch a job's objects: they submit specs and read the events (rendered here)
and the finished :class:`engine.jobs.JobView` s (results and errors as plain data).
"""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import TextIO

from engine.errors import EXIT_INTERRUPTED, EXIT_USAGE, OperationError, UsageError
from engine.jobs import CANCELLED, DONE, EventKind, JobEvent, JobRunner, JobSpec, JobView, Work
from engine.session import Session

from cli.progress import ProgressBar


class EventPrinter:
    """Shows events on ``stream`` when it is a terminal: a line when a phase starts, then a
    bar that redraws at most ten times a second. Off a terminal it prints nothing."""

    def __init__(self, stream: TextIO | None = None, show_phases: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.show_phases = show_phases
        self._titles: dict[str, str] = {}
        self._bars: dict[str, ProgressBar] = {}

    def __call__(self, event: JobEvent) -> None:
        if event.kind == EventKind.SUBMITTED.value:
            self._titles[event.job_id] = str(event.data["spec"]["title"])  # type: ignore[index]
        if not self.enabled:
            return
        title = self._titles.get(event.job_id, "job")
        if event.kind == EventKind.PHASE.value:
            self._end_bar(event.job_id)
            if self.show_phases:
                self.stream.write(f"{title}: {event.phase} {event.message}".rstrip() + "\n")
            self._bars[event.job_id] = ProgressBar(f"{title}: {event.phase}", self.stream)
        elif event.kind == EventKind.PROGRESS.value and event.job_id in self._bars:
            self._bars[event.job_id].update(event.bytes_done, event.bytes_total)
        elif event.kind == EventKind.FINISHED.value:
            self._end_bar(event.job_id)

    def _end_bar(self, job_id: str) -> None:
        bar = self._bars.pop(job_id, None)
        if bar is not None:
            bar.close()

    def close(self) -> None:
        for job_id in list(self._bars):
            self._end_bar(job_id)


async def _run(session: Session, jobs: Sequence[tuple[JobSpec, Work | None]], concurrency: int,
               printer: EventPrinter) -> list[JobView]:
    runner = JobRunner(session.execute, concurrency=max(1, concurrency))
    runner.subscribe(printer)
    ids = [runner.submit(spec, work) for spec, work in jobs]
    try:
        return [await runner.wait(job_id) for job_id in ids]
    except asyncio.CancelledError:  # Ctrl-C: cancel every job and let each clean up first
        for job_id in ids:
            runner.cancel(job_id)
        for job_id in ids:
            await runner.wait(job_id)
        raise
    finally:
        printer.close()


def run_jobs(session: Session, jobs: Sequence[tuple[JobSpec, Work | None]], *,
             concurrency: int = 1, show_phases: bool = True) -> list[JobView]:
    """Run the jobs in this process (``work`` None: the session runs the spec) and return
    their finished views, in order. Ctrl-C cancels them and raises KeyboardInterrupt."""
    return asyncio.run(_run(session, jobs, concurrency, EventPrinter(show_phases=show_phases)))


def run_job(session: Session, spec: JobSpec, work: Work | None = None, *,
            show_phases: bool = False) -> dict:
    """One job: its result (a plain dict), or its error raised as the CLI's error."""
    (view,) = run_jobs(session, [(spec, work)], show_phases=show_phases)
    raise_failures([view], titled=False)
    return view.result or {}


def raise_failures(views: Sequence[JobView], titled: bool = True) -> None:
    """The first failure as a StrongroomError with the job's own exit code (``titled``: the
    message names the job, for commands that run several)."""
    failed = [v for v in views if v.state != DONE]
    if not failed:
        return
    if any(v.state == CANCELLED for v in failed):
        raise KeyboardInterrupt
    first = failed[0]
    error = first.error
    message = error.message if error else first.state
    more = f" (and {len(failed) - 1} more failed)" if len(failed) > 1 else ""
    prefix = f"{first.title}: " if titled else ""
    exit_code = error.exit_code if error else 1
    if exit_code == EXIT_INTERRUPTED:
        raise KeyboardInterrupt
    cls = UsageError if exit_code == EXIT_USAGE else OperationError
    err = cls(f"{prefix}{message}{more}")
    err.job_traceback = error.traceback if error else ""  # type: ignore[attr-defined]
    raise err
