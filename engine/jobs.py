"""Asyncio job runner: submit long operations, cancel them, and fan out progress events.

A job is a coroutine ``fn(report)`` where ``report`` is a :class:`Reporter`. Every event is a
plain, JSON-serialisable dict (see :meth:`JobEvent.to_dict`), so the CLI, the TUI or a future
agent can render them the same way. Blocking work (the ``scaleway`` SDK, boto3, the store
pipeline) runs in threads behind ``asyncio.to_thread``; a reporter may be called from any thread.
"""
from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"
FINISHED = frozenset({DONE, FAILED, CANCELLED})


@dataclass
class JobEvent:
    job_id: str
    kind: str  # "state" | "phase" | "progress" | "log"
    state: str
    phase: str = ""
    bytes_done: int = 0
    bytes_total: int = 0
    rate: float = 0.0  # bytes per second over the current phase
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PhaseRecord:
    name: str
    started: float
    ended: float | None = None


@dataclass
class Job:
    id: str
    title: str
    kind: str = ""
    state: str = PENDING
    phase: str = ""
    bytes_done: int = 0
    bytes_total: int = 0
    rate: float = 0.0
    message: str = ""
    result: Any = None
    error: str = ""
    phases: list[PhaseRecord] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)  # calls made: method, path, status, ms
    extra: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    ended: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def eta(self) -> float | None:
        if self.rate <= 0 or self.bytes_total <= self.bytes_done:
            return None
        return (self.bytes_total - self.bytes_done) / self.rate


Listener = Callable[[Job, JobEvent], None]


class Reporter:
    """Handed to a job's coroutine; thread-safe. Updates the job and notifies listeners."""

    def __init__(self, runner: "JobRunner", job: Job) -> None:
        self._runner, self.job = runner, job
        self._phase_started = time.monotonic()
        self._phase_base = 0

    def phase(self, name: str, total: int = 0, message: str = "") -> None:
        now = time.time()
        if self.job.phases and self.job.phases[-1].ended is None:
            self.job.phases[-1].ended = now
        self.job.phases.append(PhaseRecord(name, now))
        self.job.phase, self.job.bytes_total, self.job.bytes_done = name, total, 0
        self.job.rate, self.job.message = 0.0, message
        self._phase_started = time.monotonic()
        self._emit("phase")

    def progress(self, done: int, total: int | None = None, message: str | None = None,
                 **extra: Any) -> None:
        elapsed = time.monotonic() - self._phase_started
        self.job.bytes_done = done
        if total is not None:
            self.job.bytes_total = total
        if message is not None:
            self.job.message = message
        self.job.rate = done / elapsed if elapsed > 0 else 0.0
        self.job.extra.update(extra)
        self._emit("progress")

    def call(self, method: str, path: str, status: int | str, ms: float) -> None:
        """Record one Scaleway or S3 call, for the job's log."""
        entry = {"time": time.time(), "method": method, "path": path, "status": status,
                 "ms": round(ms, 1)}
        self.job.log.append(entry)
        self._emit("log", extra=entry)

    def _emit(self, kind: str, extra: dict[str, Any] | None = None) -> None:
        j = self.job
        self._runner._publish(j, JobEvent(j.id, kind, j.state, j.phase, j.bytes_done,
                                          j.bytes_total, j.rate, j.message,
                                          dict(extra if extra is not None else j.extra)))


class JobRunner:
    """Runs jobs on one asyncio loop, at most ``concurrency`` at a time."""

    def __init__(self, concurrency: int = 2) -> None:
        self._ids = itertools.count(1)
        self.jobs: dict[str, Job] = {}
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._sem = asyncio.Semaphore(concurrency)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def submit(self, title: str, fn: Callable[[Reporter], Awaitable[Any]], kind: str = "",
               **extra: Any) -> Job:
        job = Job(id=f"job-{next(self._ids)}", title=title, kind=kind, extra=dict(extra))
        self.jobs[job.id] = job
        self._tasks[job.id] = asyncio.get_running_loop().create_task(self._run(job, fn))
        return job

    async def wait(self, job_id: str) -> Job:
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        return self.jobs[job_id]

    def cancel(self, job_id: str) -> bool:
        task = self._tasks.get(job_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    @property
    def running(self) -> list[Job]:
        return [j for j in self.jobs.values() if not j.finished]

    async def _run(self, job: Job, fn: Callable[[Reporter], Awaitable[Any]]) -> None:
        reporter = Reporter(self, job)
        try:
            async with self._sem:
                self._set_state(reporter, RUNNING)
                job.result = await fn(reporter)
            self._set_state(reporter, DONE)
        except asyncio.CancelledError:
            self._set_state(reporter, CANCELLED)
        except Exception as exc:  # a job's failure is data for the UI, not a crash
            job.error = str(exc) or type(exc).__name__
            job.message = job.error
            self._set_state(reporter, FAILED)

    def _set_state(self, reporter: Reporter, state: str) -> None:
        job = reporter.job
        job.state = state
        if state in FINISHED:
            job.ended = time.time()
            if job.phases and job.phases[-1].ended is None:
                job.phases[-1].ended = job.ended
        reporter._emit("state")

    def _publish(self, job: Job, event: JobEvent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(job, event)
