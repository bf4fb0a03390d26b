"""Where the app's jobs run, and how it hears of them: the user's daemon, or this process.

Widgets read :class:`~engine.jobs.JobView` s from ``app.jobs`` (a :class:`JobSource`) and never
care which one it is. Both call a listener, from any thread, with a job id whenever that job
changed (and whether it has just ended); the App's 10 Hz pump does the drawing.

- :class:`DaemonJobs`: jobs run in the per-user daemon (started on demand), so they outlive the
  app and the SSH session. One blocking :meth:`DaemonJobs.follow` (the App runs it in a thread
  worker) holds a stream of every job's events, from this app, the CLI, cron or another
  session, and folds them into views; the daemon's job list (its journal) is read once the
  stream is registered, so history shows and nothing falls between the two.
- :class:`LocalJobs`: an in-process :class:`~engine.jobs.JobRunner` (tests,
  ``STRONGROOM_NO_DAEMON=1``, the demo); its jobs end with the app.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from engine.daemon.client import (START_TIMEOUT, DaemonClient, DaemonUnavailable, connect,
                                  start_daemon)
from engine.daemon.paths import daemon_paths
from engine.daemon.protocol import JobContext
from engine.errors import StrongroomError, UsageError
from engine.jobs import (FINISHED, EventKind, JobError, JobEvent, JobRunner, JobSpec, JobView,
                         Journal)

# (job id, ended): ended is True when the job has just finished while the app watched
Listener = Callable[[str, bool], None]

IN_PROCESS = "in-process"
RECONNECT_EVERY = 2.0  # seconds between two attempts to reach a daemon that went away


def daemon_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """False with STRONGROOM_NO_DAEMON=1 (as for the CLI): jobs run in the app's process."""
    environ = os.environ if environ is None else environ
    return environ.get("STRONGROOM_NO_DAEMON", "") in ("", "0")


class JobSource(Protocol):
    """What the app needs of wherever its jobs run."""

    detached: bool  # jobs outlive the app (quitting need not ask)

    def listen(self, listener: Listener) -> None: ...

    def follow(self) -> None:
        """Blocks, feeding the listener, until :meth:`close` (run it in a thread); returns at
        once when there is nothing to follow."""

    async def submit(self, spec: JobSpec) -> str: ...

    async def cancel(self, job_id: str) -> bool: ...

    async def fetch(self, job_id: str) -> None:
        """Make sure the job's whole journal is held (for its detail), not just its summary."""

    def views(self) -> list[JobView]:
        """Newest first."""

    def view(self, job_id: str) -> JobView:
        """KeyError when unknown."""

    def events(self, job_id: str, since: int = 0) -> list[JobEvent]: ...

    @property
    def running(self) -> list[JobView]: ...

    def status(self) -> str:
        """A few words for the header: "daemon: 2 running", "in-process"…"""

    def close(self) -> None: ...


class LocalJobs:
    """Jobs in this process: they end with the app."""

    detached = False

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    def listen(self, listener: Listener) -> None:
        finished = EventKind.FINISHED.value
        self.runner.subscribe(lambda e: listener(e.job_id, e.kind == finished))

    def follow(self) -> None:
        return

    async def submit(self, spec: JobSpec) -> str:
        return self.runner.submit(spec)

    async def cancel(self, job_id: str) -> bool:
        return self.runner.cancel(job_id)

    async def fetch(self, job_id: str) -> None:
        return

    def views(self) -> list[JobView]:
        return self.runner.views()

    def view(self, job_id: str) -> JobView:
        return self.runner.view(job_id)

    def events(self, job_id: str, since: int = 0) -> list[JobEvent]:
        return self.runner.events(job_id, since)

    @property
    def running(self) -> list[JobView]:
        return self.runner.running

    def status(self) -> str:
        return IN_PROCESS

    def close(self) -> None:
        return


def view_of_summary(doc: Mapping[str, Any]) -> JobView:
    """A job as `list` summarises it: enough for its row; its detail fetches the events."""
    error = doc.get("error")
    err = JobError(**error) if isinstance(error, dict) else None
    result = doc.get("result")
    return JobView(str(doc["id"]), kind=str(doc.get("kind", "")), title=str(doc.get("title", "")),
                   state=str(doc.get("state", "")), phase=str(doc.get("phase", "")),
                   bytes_done=int(doc.get("bytes_done") or 0),
                   bytes_total=int(doc.get("bytes_total") or 0),
                   rate=float(doc.get("rate") or 0.0), message=err.message if err else "",
                   result=result if isinstance(result, dict) else None, error=err,
                   created=float(doc.get("started") or 0.0),
                   ended=float(doc["ended"]) if doc.get("ended") is not None else None)


class DaemonJobs:
    """The daemon's jobs, all of them, live. Thread-safe: :meth:`follow` writes from its
    thread, the UI reads; ``submit``/``cancel``/``fetch`` talk to the daemon from a thread."""

    detached = True

    def __init__(self, context: JobContext) -> None:
        self._context = context
        self._lock = threading.RLock()
        self._views: dict[str, JobView] = {}
        self._journals: dict[str, Journal] = {}
        self._partial: set[str] = set()  # known from the job list only: no events held yet
        self._listeners: list[Listener] = []
        self._closed = threading.Event()
        self._wake = threading.Event()  # a submit started the daemon: reconnect now
        self._stream: DaemonClient | None = None
        self._connected = False
        self._problem = ""
        self._status = "daemon: connecting…"

    # -- what the app calls --------------------------------------------------------------------
    def listen(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    async def submit(self, spec: JobSpec) -> str:
        def go() -> str:
            with self._client(start=True) as client:
                job_id = client.submit(spec, self._context)
            self._wake.set()
            return job_id

        return await asyncio.to_thread(go)

    async def cancel(self, job_id: str) -> bool:
        def go() -> bool:
            with self._client(start=False) as client:
                return client.cancel(job_id)

        return await asyncio.to_thread(go)

    async def fetch(self, job_id: str) -> None:
        with self._lock:
            if job_id not in self._partial:
                return
        await asyncio.to_thread(self._load, [job_id])

    def views(self) -> list[JobView]:
        with self._lock:
            return sorted(self._views.values(), key=lambda v: v.created, reverse=True)

    def view(self, job_id: str) -> JobView:
        with self._lock:
            return self._views[job_id]

    def events(self, job_id: str, since: int = 0) -> list[JobEvent]:
        with self._lock:
            journal = self._journals.get(job_id)
            if journal is None:
                if job_id in self._views:
                    return []  # a summary only, until fetched
                raise KeyError(job_id)
            return journal.since(since)

    @property
    def running(self) -> list[JobView]:
        return [v for v in self.views() if not v.finished]

    def status(self) -> str:
        return self._status

    @property
    def problem(self) -> str:
        """Why the daemon cannot be used (another user's socket, a path too long…), or ""."""
        return self._problem

    def close(self) -> None:
        """From any thread: :meth:`follow` returns soon after."""
        with self._lock:
            self._closed.set()
            self._wake.set()
            stream = self._stream
        if stream is not None:
            stream.interrupt()

    # -- the stream ----------------------------------------------------------------------------
    def follow(self) -> None:
        """Hold a stream of every job's events until :meth:`close`; when the daemon goes away
        (stopped, killed), keep trying to reach it again. The first time, start it."""
        start = True
        while not self._closed.is_set():
            try:
                stream = self._client(start=start)
            except DaemonUnavailable:
                self._disconnected("")
                self._pause()
                continue
            except StrongroomError as exc:  # not ours to use: say so, and try again later
                self._disconnected(" ".join(str(exc).split()))
                self._pause()
                continue
            start = False
            with self._lock:
                if self._closed.is_set():
                    stream.close()
                    return
                self._stream = stream
            try:
                for event in stream.subscribe(None, ready=self._resync):
                    self._fold(event)
            except (StrongroomError, OSError):
                pass  # stopped or killed: the next turn reconnects
            except BaseException:  # a bug: the worker reports it; the header must not lie
                self._disconnected("not followed")
                raise
            finally:
                with self._lock:
                    self._stream = None
                stream.close()
            self._disconnected("")

    def _pause(self) -> None:
        self._wake.wait(RECONNECT_EVERY)
        self._wake.clear()

    def _client(self, start: bool) -> DaemonClient:
        """A client of the daemon; with ``start``, the daemon is started if none runs. Waits in
        short steps, so that :meth:`close` is never held up by a slow start."""
        try:
            return connect(start=False)
        except DaemonUnavailable:
            if not start or self._closed.is_set():
                raise
        paths = daemon_paths()
        start_daemon(paths)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                return connect(start=False)
            except DaemonUnavailable:
                if time.monotonic() > deadline or self._closed.wait(0.05):
                    raise DaemonUnavailable(f"the daemon did not start; see its log "
                                            f"{paths.log}") from None

    def _disconnected(self, problem: str) -> None:
        with self._lock:
            self._connected, self._problem = False, problem
            self._recount()

    def _resync(self) -> None:
        """The daemon's job list, read once the stream is registered: finished jobs from its
        summaries (their events come when a detail asks), running ones from their events."""
        with self._client(start=False) as client:
            summaries = client.jobs(all_jobs=True)
            live = {}
            for doc in summaries:
                if doc.get("state") not in FINISHED:
                    try:
                        live[str(doc["id"])] = client.events(str(doc["id"]))
                    except UsageError:
                        continue  # forgotten meanwhile: its summary will do
        changed: list[tuple[str, bool]] = []
        with self._lock:
            listed = set()
            for doc in summaries:
                job_id = str(doc["id"])
                listed.add(job_id)
                old = self._views.get(job_id)
                if job_id in live and live[job_id]:
                    self._hold(job_id, live[job_id])
                elif old is None or old.state != doc.get("state") or not old.finished:
                    self._views[job_id] = view_of_summary(doc)
                    self._journals.pop(job_id, None)
                    self._partial.add(job_id)
                else:
                    continue  # already held as it is
                new = self._views[job_id]
                changed.append((job_id, old is not None and not old.finished and new.finished))
            for job_id in set(self._views) - listed:  # forgotten by the daemon's journal
                for table in (self._views, self._journals):
                    table.pop(job_id, None)
                self._partial.discard(job_id)
                changed.append((job_id, False))
            self._connected, self._problem = True, ""
            self._recount()
        self._tell(changed)

    def _load(self, job_ids: list[str]) -> None:
        """Read these jobs' journals from the daemon and hold them whole."""
        with self._client(start=False) as client:
            fetched = {job_id: client.events(job_id) for job_id in job_ids}
        with self._lock:
            for job_id, events in fetched.items():
                if events:
                    self._hold(job_id, events)
            self._recount()
        self._tell([(job_id, False) for job_id in fetched])

    def _hold(self, job_id: str, events: list[JobEvent]) -> None:
        journal = Journal()
        for event in events:
            journal.add(event)
        self._views[job_id] = JobView.from_events(events)
        self._journals[job_id] = journal
        self._partial.discard(job_id)

    def _fold(self, event: JobEvent) -> None:
        job_id = event.job_id
        with self._lock:
            view = self._views.get(job_id)
            was_finished = view is not None and view.finished
            fresh = view is None and event.seq == 1
            gap = not fresh and (view is None or job_id in self._partial
                                 or event.seq > view.seq + 1)
        if gap:  # the job's start (or more) came before this stream: read its journal first
            try:
                self._load([job_id])
            except (DaemonUnavailable, StrongroomError):
                pass  # the next resync holds it
        with self._lock:
            if fresh:
                self._views[job_id] = JobView(job_id)
                self._journals[job_id] = Journal()
            view = self._views.get(job_id)
            if view is None:
                return
            view.apply(event)
            journal = self._journals.get(job_id)
            if journal is not None:
                journal.add(event)
            if event.kind in (EventKind.SUBMITTED.value, EventKind.STATE.value,
                              EventKind.FINISHED.value):
                self._recount()
            ended = view.finished and not was_finished
        self._tell([(job_id, ended)])

    def _recount(self) -> None:
        """The header's words (under the lock)."""
        if not self._connected:
            self._status = ("daemon: unavailable" if self._problem
                            else "daemon: not running")
            return
        running = sum(1 for v in self._views.values() if not v.finished)
        self._status = f"daemon: {running} running" if running else "daemon: idle"

    def _tell(self, changed: list[tuple[str, bool]]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for job_id, ended in changed:
            for listener in listeners:
                listener(job_id, ended)
