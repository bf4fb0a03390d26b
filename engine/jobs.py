"""Jobs as data: a named kind with JSON parameters, a uuid, and a journal of numbered events.

Every long operation (backup, restore, backup-image, restore-image, check, restore-files, …)
is submitted as a :class:`JobSpec`. While it runs, its :class:`Reporter` turns what it does
into :class:`JobEvent` s, numbered from 1 per job; the last one (kind ``finished``) carries the
result or the error as plain data. Events are JSON-serialisable (``to_dict``/``from_dict``), so
a driver in another process (the daemon's clients) receives exactly what an in-process one
does. Drivers render a :class:`JobView`, which is nothing but the events folded in order:
nothing reads a running job's Python objects.

Memory stays bounded: a job's journal keeps its lifecycle events, only the newest progress
event, and the last :data:`CALL_LOG_SIZE` calls (plus counts per method and status); the runner
forgets the oldest finished jobs past :attr:`JobRunner.keep_finished`.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

from engine.errors import EXIT_PROBLEM, StrongroomError

T = TypeVar("T")
# A JSON value, as json.loads gives it back.
JSON = Union[None, bool, int, float, str, list["JSON"], dict[str, "JSON"]]

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"
INTERRUPTED = "interrupted"  # its runner died while it ran (a daemon restarted)
FINISHED = frozenset({DONE, FAILED, CANCELLED, INTERRUPTED})


class EventKind(str, enum.Enum):
    SUBMITTED = "submitted"  # data: spec, title
    STATE = "state"          # the job started running
    PHASE = "phase"          # a new step: phase, bytes_total, message
    PROGRESS = "progress"    # bytes_done / bytes_total, rate; data: counters such as stored_bytes
    CALL = "call"            # one Scaleway or S3 call; data: method, path, status, ms
    #                          (and request_id when the answer had one)
    FINISHED = "finished"    # state done/failed/cancelled; data: result | error, calls


CALL_LOG_SIZE = 200
PROGRESS_INTERVAL = 0.05  # seconds between two progress events of one job (20 a second)


@dataclass(frozen=True)
class JobSpec:
    """What to run: a kind and its JSON parameters (see ``engine.jobkinds``)."""

    kind: str
    params: dict[str, JSON] = field(default_factory=dict)
    title: str = ""

    def to_dict(self) -> dict[str, JSON]:
        return {"kind": self.kind, "params": dict(self.params), "title": self.title}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "JobSpec":
        return cls(str(doc["kind"]), dict(doc.get("params") or {}), str(doc.get("title", "")))


@dataclass
class JobEvent:
    job_id: str
    seq: int
    kind: str  # an EventKind value
    state: str
    phase: str = ""
    bytes_done: int = 0
    bytes_total: int = 0
    rate: float = 0.0  # bytes per second over the current phase
    message: str = ""
    data: dict[str, JSON] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, JSON]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "JobEvent":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})


@dataclass
class JobError:
    """A failure as data: the one-line message a person reads, and the exit code it means."""

    message: str
    type: str = ""
    exit_code: int = EXIT_PROBLEM
    traceback: str = ""  # only for an unexpected error (a bug): what --debug shows

    @classmethod
    def of(cls, exc: BaseException) -> "JobError":
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, StrongroomError):
            return cls(text, type(exc).__name__, exc.exit_code)
        trace = "".join(traceback.format_exception(exc))
        return cls(f"{type(exc).__name__}: {text}", type(exc).__name__, EXIT_PROBLEM, trace)


@dataclass
class PhaseRecord:
    name: str
    started: float
    ended: float | None = None


@dataclass
class CallLog:
    """The last ``size`` calls, and how many calls of each method and status there were."""

    size: int = CALL_LOG_SIZE
    recent: deque[dict[str, JSON]] = field(default_factory=deque)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, call: dict[str, JSON]) -> None:
        self.recent.append(call)
        while len(self.recent) > self.size:
            self.recent.popleft()
        self.counts[f"{call.get('method')} {call.get('status')}"] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class JobView:
    """A job as its events tell it: what every driver renders."""

    id: str
    kind: str = ""
    title: str = ""
    params: dict[str, JSON] = field(default_factory=dict)
    state: str = PENDING
    phase: str = ""
    bytes_done: int = 0
    bytes_total: int = 0
    rate: float = 0.0
    message: str = ""
    counters: dict[str, JSON] = field(default_factory=dict)  # progress data, e.g. stored_bytes
    phases: list[PhaseRecord] = field(default_factory=list)
    calls: CallLog = field(default_factory=CallLog)
    result: dict[str, JSON] | None = None
    error: JobError | None = None
    created: float = 0.0
    ended: float | None = None
    seq: int = 0  # the last event folded in

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def eta(self) -> float | None:
        if self.rate <= 0 or self.bytes_total <= self.bytes_done:
            return None
        return (self.bytes_total - self.bytes_done) / self.rate

    def summary(self) -> dict[str, JSON]:
        """The job on one line of `strongroom jobs --json`."""
        return {"id": self.id, "kind": self.kind, "title": self.title, "state": self.state,
                "phase": self.phase, "bytes_done": self.bytes_done,
                "bytes_total": self.bytes_total, "rate": round(self.rate, 1),
                "started": self.created, "ended": self.ended, "result": self.result,
                "error": dataclasses.asdict(self.error) if self.error else None}

    @classmethod
    def from_events(cls, events: Iterable[JobEvent]) -> "JobView":
        view: JobView | None = None
        for event in events:
            view = view or cls(event.job_id)
            view.apply(event)
        if view is None:
            raise ValueError("a job view needs at least one event")
        return view

    def apply(self, e: JobEvent) -> None:
        """Fold one event in; an event already seen (same or older seq) changes nothing."""
        if e.seq <= self.seq:
            return
        self.seq, self.state = e.seq, e.state
        kind = EventKind(e.kind)
        if kind is EventKind.SUBMITTED:
            spec = JobSpec.from_dict(e.data["spec"])  # type: ignore[arg-type]
            self.kind, self.params, self.title = spec.kind, spec.params, spec.title
            self.created = e.time
        elif kind is EventKind.PHASE:
            self._end_phase(e.time)
            self.phases.append(PhaseRecord(e.phase, e.time))
            self.phase, self.bytes_done, self.bytes_total = e.phase, 0, e.bytes_total
            self.rate, self.message = 0.0, e.message
        elif kind is EventKind.PROGRESS:
            self.bytes_done, self.bytes_total, self.rate = e.bytes_done, e.bytes_total, e.rate
            self.message = e.message or self.message
            self.counters.update(e.data)
        elif kind is EventKind.CALL:
            self.calls.add(e.data)
        elif kind is EventKind.FINISHED:
            self._finish(e)

    def _end_phase(self, when: float) -> None:
        if self.phases and self.phases[-1].ended is None:
            self.phases[-1].ended = when

    def _finish(self, e: JobEvent) -> None:
        self._end_phase(e.time)
        self.ended = e.time
        result, error = e.data.get("result"), e.data.get("error")
        self.result = result if isinstance(result, dict) else None
        if isinstance(error, dict):
            self.error = JobError(**error)  # type: ignore[arg-type]
            self.message = self.error.message
        counts = e.data.get("calls")
        if isinstance(counts, dict) and not self.calls.counts:
            self.calls.counts.update({str(k): int(v) for k, v in counts.items()})  # type: ignore[arg-type]


class Journal:
    """The events of one job, numbered, bounded: lifecycle events all, progress the newest,
    calls the last CALL_LOG_SIZE."""

    def __init__(self) -> None:
        self._kept: list[JobEvent] = []
        self._progress: JobEvent | None = None
        self._calls: deque[JobEvent] = deque(maxlen=CALL_LOG_SIZE)

    def add(self, event: JobEvent) -> None:
        if event.kind == EventKind.PROGRESS.value:
            self._progress = event
        elif event.kind == EventKind.CALL.value:
            self._calls.append(event)
        else:
            self._kept.append(event)

    def since(self, seq: int = 0) -> list[JobEvent]:
        """The kept events numbered above ``seq``, in order."""
        events = [e for e in self._kept if e.seq > seq]
        events += [e for e in self._calls if e.seq > seq]
        if self._progress is not None and self._progress.seq > seq:
            events.append(self._progress)
        return sorted(events, key=lambda e: e.seq)


def to_plain(value: Any) -> JSON:
    """A job's result as plain JSON data (dataclasses become objects, tuples lists)."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        value = value.to_dict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


async def blocking(fn: Callable[[], T], cancel: threading.Event) -> T:
    """Run blocking work in a thread. When the job is cancelled, set ``cancel`` (the work
    watches it) and wait until the work has stopped, so nothing is left half-written behind
    the cancelled job; then let the cancellation through."""
    task = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        cancel.set()
        with contextlib.suppress(BaseException):
            await task
        raise


Listener = Callable[[JobEvent], None]
Work = Callable[["Reporter"], Awaitable[Any]]


class Reporter:
    """Handed to a job's coroutine; thread-safe. Turns what the job does into events."""

    def __init__(self, runner: "JobRunner", job_id: str) -> None:
        self._runner, self.job_id = runner, job_id
        self._lock = threading.Lock()
        self._phase_started = time.monotonic()
        self._last_progress = 0.0
        self.state, self.phase_name = PENDING, ""
        self._done = self._total = 0
        self._message = ""

    def phase(self, name: str, total: int = 0, message: str = "") -> None:
        with self._lock:
            self.phase_name, self._total, self._done, self._message = name, total, 0, message
            self._phase_started = time.monotonic()
            self._emit(EventKind.PHASE, bytes_total=total, message=message)

    def progress(self, done: int, total: int | None = None, message: str | None = None,
                 **counters: JSON) -> None:
        """Progress of the current phase. Throttled: at most one event every
        PROGRESS_INTERVAL, except the one that reaches the total."""
        with self._lock:
            self._done = done
            if total is not None:
                self._total = total
            if message is not None:
                self._message = message
            now = time.monotonic()
            if now - self._last_progress < PROGRESS_INTERVAL and done < self._total:
                return
            self._last_progress = now
            elapsed = now - self._phase_started
            self._emit(EventKind.PROGRESS, bytes_done=done, bytes_total=self._total,
                       rate=done / elapsed if elapsed > 0 else 0.0, message=self._message,
                       data=dict(counters))

    def call(self, method: str, path: str, status: int | str, ms: float, *,
             request_id: str | None = None) -> None:
        """Record one Scaleway or S3 call, for the job's log; ``request_id`` (the answer's
        X-Request-Id, what Scaleway support asks for) is in the event's data when known."""
        data: dict[str, JSON] = {"time": time.time(), "method": method, "path": path,
                                 "status": status, "ms": round(ms, 1)}
        if request_id:
            data["request_id"] = request_id
        with self._lock:
            self._emit(EventKind.CALL, data=data)

    def _emit(self, kind: EventKind, **fields: Any) -> None:
        fields.setdefault("bytes_done", self._done)
        fields.setdefault("bytes_total", self._total)
        self._runner._publish(self.job_id, kind, self.state, self.phase_name, **fields)


class JobRunner:
    """Runs jobs on one asyncio loop, at most ``concurrency`` at a time.

    ``execute(spec, reporter)`` runs a spec (``Session.execute``); ``submit`` may also be given
    the work itself, for a job whose input only this process has (an image read from stdin).
    Listeners get every event, on whatever thread emitted it."""

    def __init__(self, execute: Callable[[JobSpec, Reporter], Awaitable[Any]] | None = None,
                 concurrency: int = 2, keep_finished: int = 100) -> None:
        self._execute = execute
        self.keep_finished = keep_finished
        self._views: dict[str, JobView] = {}
        self._journals: dict[str, Journal] = {}
        self._seq: dict[str, int] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._sem = asyncio.Semaphore(concurrency)

    # -- what drivers call --------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def submit(self, spec: JobSpec, work: Work | None = None) -> str:
        """Queue a job; returns its id at once."""
        if work is None:
            if self._execute is None:
                raise ValueError("this runner has no executor: give the work to submit")
            execute = self._execute
            work = lambda reporter: execute(spec, reporter)  # noqa: E731
        job_id = uuid.uuid4().hex
        reporter = Reporter(self, job_id)
        with self._lock:
            self._views[job_id] = JobView(job_id)
            self._journals[job_id] = Journal()
            self._seq[job_id] = 0
        self._publish(job_id, EventKind.SUBMITTED, PENDING, "",
                      data={"spec": spec.to_dict()})
        self._tasks[job_id] = asyncio.get_running_loop().create_task(self._run(reporter, work))
        return job_id

    def view(self, job_id: str) -> JobView:
        with self._lock:
            return self._views[job_id]

    def views(self) -> list[JobView]:
        """Every job this runner remembers, newest first."""
        with self._lock:
            return sorted(self._views.values(), key=lambda v: v.created, reverse=True)

    def events(self, job_id: str, since: int = 0) -> list[JobEvent]:
        with self._lock:
            return self._journals[job_id].since(since)

    async def wait(self, job_id: str) -> JobView:
        """The job's view once it has finished (still given if it was trimmed meanwhile)."""
        view, task = self.view(job_id), self._tasks.get(job_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        return view

    def cancel(self, job_id: str) -> bool:
        task = self._tasks.get(job_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    @property
    def running(self) -> list[JobView]:
        return [v for v in self.views() if not v.finished]

    # -- inside --------------------------------------------------------------------------------
    async def _run(self, reporter: Reporter, work: Work) -> None:
        job_id = reporter.job_id
        try:
            async with self._sem:
                reporter.state = RUNNING
                self._publish(job_id, EventKind.STATE, RUNNING, "")
                result = to_plain(await work(reporter))
            self._finish(reporter, DONE, {"result": result})
        except asyncio.CancelledError:
            self._finish(reporter, CANCELLED, {"error": dataclasses.asdict(
                JobError("cancelled", "Cancelled", 130))})
        except Exception as exc:  # a job's failure is data for the drivers, not a crash
            self._finish(reporter, FAILED, {"error": dataclasses.asdict(JobError.of(exc))})
        finally:
            self._tasks.pop(job_id, None)
            self._trim()

    def _finish(self, reporter: Reporter, state: str, data: dict[str, JSON]) -> None:
        with reporter._lock:
            reporter.state = state
            counts = dict(self.view(reporter.job_id).calls.counts)
            reporter._emit(EventKind.FINISHED, data={**data, "calls": counts})

    def _publish(self, job_id: str, kind: EventKind, state: str, phase: str,
                 **fields: Any) -> None:
        with self._lock:
            if job_id not in self._views:
                return  # trimmed: a late event of a forgotten job
            self._seq[job_id] += 1
            event = JobEvent(job_id, self._seq[job_id], kind.value, state, phase, **fields)
            self._views[job_id].apply(event)
            self._journals[job_id].add(event)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)

    def _trim(self) -> None:
        with self._lock:
            done = [v for v in self._views.values() if v.finished]
            done.sort(key=lambda v: v.ended or 0)
            for view in done[:max(0, len(done) - self.keep_finished)]:
                for table in (self._views, self._journals, self._seq):
                    table.pop(view.id, None)
