"""Run a command's jobs and show them as they go: a line per phase, a live bar on a terminal.

Jobs run in the user's daemon (started on demand), so they outlive the terminal: a dropped SSH
connection leaves them running, Ctrl-C cancels them (as restic does), ``--detach`` returns at
once with the job ids. ``--no-daemon`` runs them in this process, as does a job whose input or
output is this process's own stdin or stdout. Either way commands read only events and the
finished :class:`engine.jobs.JobView` s (results and errors as plain data).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import FrameType
from typing import TextIO

from cli.context import Context
from cli.output import print_json
from cli.progress import ProgressBar
from engine.errors import EXIT_INTERRUPTED, EXIT_USAGE, OperationError, UsageError
from engine.jobs import CANCELLED, DONE, EventKind, JobEvent, JobRunner, JobSpec, JobView, Work
from engine.session import Session


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, timeout, systemd): stop like Ctrl-C, cleaning up first."""

    exit_code, message = 143, "terminated"


class HungUp(KeyboardInterrupt):
    """SIGHUP (the terminal or SSH session went away): a job in the daemon goes on; a job in
    this process stops, cleaning up first."""

    exit_code, message = 129, "hung up"


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP raise in the main thread as Ctrl-C does, so that clean-up runs."""
    def raiser(cls: type[KeyboardInterrupt]) -> Callable[[int, FrameType | None], None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            raise cls()
        return handler

    old = {sig: signal.signal(sig, raiser(cls))
           for sig, cls in ((signal.SIGTERM, Terminated), (signal.SIGHUP, HungUp))}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detach", action="store_true",
                        help="submit to the daemon and return at once, printing the job id")
    parser.add_argument("--no-daemon", action="store_true",
                        help="run in this process (the job ends with it)")


class EventPrinter:
    """Shows events on ``stream`` when it is a terminal: a line when a phase starts, then a
    bar that redraws at most ten times a second. Off a terminal it prints nothing."""

    def __init__(self, stream: TextIO | None = None, show_phases: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.show_phases = show_phases
        self._titles: dict[str, str] = {}
        self._bars: dict[str, ProgressBar] = {}
        self._lock = threading.Lock()

    def title(self, job_id: str, title: str) -> None:
        self._titles[job_id] = title

    def __call__(self, event: JobEvent) -> None:
        with self._lock:
            self._show(event)

    def _show(self, event: JobEvent) -> None:
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
        with self._lock:
            for job_id in list(self._bars):
                self._end_bar(job_id)


class Launcher:
    """How one command runs its jobs, from its ``--detach`` / ``--no-daemon`` flags."""

    def __init__(self, ctx: Context, args: argparse.Namespace) -> None:
        self.ctx = ctx
        self.detach = bool(getattr(args, "detach", False))
        self.in_process = bool(getattr(args, "no_daemon", False)) or no_daemon_by_default()
        if self.detach and self.in_process:
            raise UsageError("--detach needs the daemon: drop --no-daemon")

    def run(self, session: Session, jobs: Sequence[tuple[JobSpec, Work | None]], *,
            concurrency: int = 1, show_phases: bool = True) -> list[JobView] | None:
        """The finished views, in order; None when detached (the ids were printed).
        A job with its own ``work`` (this process's stdin or stdout) always runs here."""
        local = self.in_process or any(work is not None for _, work in jobs)
        if local and self.detach:
            raise UsageError("--detach cannot run a job that reads stdin or writes stdout: "
                             "give a file instead of -")
        with signals_as_interrupts():
            if local:
                session.store()  # the passphrase (and a wrong one) before any job starts
                return run_in_process(session, jobs, concurrency, show_phases)
            return self._run_in_daemon(session, [spec for spec, _ in jobs], show_phases)

    def run_one(self, session: Session, spec: JobSpec, work: Work | None = None, *,
                show_phases: bool = False) -> dict | None:
        """One job: its result (a plain dict; None when detached), or its error raised."""
        views = self.run(session, [(spec, work)], show_phases=show_phases)
        if views is None:
            return None
        raise_failures(views, titled=False)
        return views[0].result or {}

    def _run_in_daemon(self, session: Session, specs: list[JobSpec],
                       show_phases: bool) -> list[JobView] | None:
        from engine.daemon.client import connect, job_context

        passphrase = self.ctx.passphrase()
        context = job_context(session.store_url, session.profile, passphrase)
        with connect() as client:
            ids = [client.submit(spec, context) for spec in specs]
        if self.detach:
            doc = {"job": ids[0]} if len(ids) == 1 else {"jobs": ids}
            if self.ctx.json:
                print_json(doc)
            else:
                print("\n".join(ids))
                print("follow with `strongroom jobs follow ID`", file=sys.stderr)
            return None
        printer = EventPrinter(show_phases=show_phases)
        for job_id, spec in zip(ids, specs):
            printer.title(job_id, spec.title)
        return follow(ids, printer)


def follow(ids: Sequence[str], printer: EventPrinter) -> list[JobView]:
    """Follow daemon jobs to their end, one thread and connection each. Ctrl-C cancels them,
    waits for their clean-up, then raises KeyboardInterrupt."""
    from engine.daemon.client import connect

    views: dict[str, JobView] = {job_id: JobView(job_id) for job_id in ids}
    ended = {job_id: threading.Event() for job_id in ids}
    failures: list[BaseException] = []

    def watch(job_id: str) -> None:
        try:
            with connect(start=False) as client:
                for event in client.subscribe(job_id):
                    views[job_id].apply(event)
                    printer(event)
        except BaseException as exc:  # shown by the main thread
            failures.append(exc)
        finally:
            ended[job_id].set()

    threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in ids]
    for thread in threads:
        thread.start()
    try:
        _wait_all(ended.values())
    except HungUp:
        raise  # the terminal went away, not the wish to stop: the jobs go on in the daemon
    except KeyboardInterrupt:
        with connect(start=False) as client:
            for job_id in ids:
                client.cancel(job_id)
        _wait_all(ended.values())
        raise
    finally:
        printer.close()
    if failures:
        raise failures[0]
    return [views[i] for i in ids]


def _wait_all(events: Iterable[threading.Event]) -> None:
    """Short waits, so that Ctrl-C reaches the main thread (an interrupted Thread.join can
    leave is_alive() False for a thread that still runs, so threads are not joined)."""
    for event in events:
        while not event.wait(0.2):
            pass


async def _run_here(session: Session, jobs: Sequence[tuple[JobSpec, Work | None]],
                    concurrency: int, printer: EventPrinter) -> list[JobView]:
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


def run_in_process(session: Session, jobs: Sequence[tuple[JobSpec, Work | None]],
                   concurrency: int = 1, show_phases: bool = True) -> list[JobView]:
    """Run the jobs in this process and return their finished views, in order."""
    return asyncio.run(_run_here(session, jobs, concurrency,
                                 EventPrinter(show_phases=show_phases)))


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


def no_daemon_by_default() -> bool:
    """STRONGROOM_NO_DAEMON=1: every command runs its jobs in-process (no daemon at all)."""
    return os.environ.get("STRONGROOM_NO_DAEMON", "") not in ("", "0")
