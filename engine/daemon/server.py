"""The per-user daemon: owns and runs jobs, so they outlive the SSH session that started them.

One daemon per user, held by an flock on ``daemon.lock`` (a second one says where the first
is and exits 0; a socket left by a killed daemon is replaced). It listens on a Unix socket
(0600 in a 0700 folder, never TCP), journals jobs to disk, and exits by itself after
``idle`` seconds with no job and no client. A job's work runs in the daemon's own Session
for the client's store and profile; its events go to the journal and to every subscriber.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.daemon.journal import JobJournal
from engine.daemon.paths import DaemonPaths, daemon_paths, private_dir
from engine.daemon.protocol import (MAX_LINE, JobContext, ProtocolError, decode_request,
                                    encode, env_fingerprint)
from engine.errors import StrongroomError, UsageError
from engine.jobkinds import params_of
from engine.jobs import FINISHED, EventKind, JobEvent, JobRunner, JobSpec, JobView, Reporter
from engine.session import Session
from engine.settings import load_settings

log = logging.getLogger("strongroom.daemon")
DEFAULT_IDLE = 600.0
STOP_GRACE = 120.0  # how long `stop` waits for cancelled jobs to clean up
LIST_DEFAULT = 20  # jobs `strongroom jobs` shows without --all
SWEEP_PAUSES = (0.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0)  # before each sweep of a dead job


class AlreadyRunning(Exception):
    def __init__(self, pid: str, socket: str) -> None:
        super().__init__(f"a daemon is already running (pid {pid or '?'}) at {socket}")
        self.pid, self.socket = pid, socket


@dataclass
class _Subscriber:
    queue: asyncio.Queue[JobEvent | None]
    job_id: str | None  # None: every job


@dataclass
class _Clients:
    count: int = 0
    subscribers: list[_Subscriber] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)


class Daemon:
    def __init__(self, paths: DaemonPaths | None = None, idle: float = DEFAULT_IDLE,
                 concurrency: int = 2) -> None:
        self.paths = paths or daemon_paths()
        self.idle = idle
        self.started = time.time()
        self.environment = env_fingerprint()
        self.runner = JobRunner(concurrency=concurrency, keep_finished=50)
        self.journal: JobJournal | None = None
        self.clients = _Clients()
        self.sessions: dict[tuple[str, str, str], Session] = {}
        self._last_busy = time.monotonic()
        self._stopping = asyncio.Event()
        self._lock_fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- life ----------------------------------------------------------------------------------
    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        private_dir(self.paths.runtime)
        private_dir(self.paths.state)
        self._take_instance_lock()
        self.journal = JobJournal(self.paths.journal)
        interrupted = self.journal.interrupt_unfinished(
            "the daemon stopped while this job ran (killed, or the machine restarted); "
            "its temporaries on Scaleway and S3 were swept when the daemon started again")
        sweeps = [asyncio.ensure_future(self._sweep(view)) for view in interrupted]
        self.runner.subscribe(self._event_from_any_thread)
        self.paths.socket.unlink(missing_ok=True)  # a killed daemon's: the flock says it is dead
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others connect
        try:
            server = await asyncio.start_unix_server(self._client, path=str(self.paths.socket),
                                                     limit=MAX_LINE)
        finally:
            os.umask(old_umask)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._stopping.set)
        self._loop.add_signal_handler(signal.SIGHUP, lambda: None)  # a closed terminal: go on
        log.info("listening on %s (pid %d, idle exit after %.0f s)", self.paths.socket,
                 os.getpid(), self.idle)
        idle_watch = asyncio.ensure_future(self._watch_idle())
        try:
            async with server:
                await self._stopping.wait()
        finally:
            idle_watch.cancel()
            for sweep in sweeps:
                sweep.cancel()
            await self._cancel_all()
            await self._hang_up()
            self.paths.socket.unlink(missing_ok=True)
            for session in self.sessions.values():
                session.close()
            self.journal.close()
            log.info("stopped")

    async def _sweep(self, view: JobView) -> None:
        """The temporaries of a job a dead daemon was running (respecting others' leases).
        Swept again a few times: a snapshot still exporting for the dead job is busy, and
        can only go once Scaleway has finished with it."""
        log.warning("job %s (%s) was interrupted", view.id, view.title)
        assert self.journal is not None
        store_url, profile = self.journal.where(view.id)
        spec = JobSpec(view.kind, view.params, view.title)
        for pause in SWEEP_PAUSES:
            await asyncio.sleep(pause)
            try:
                with Session(store_url=store_url or None, profile=profile) as session:
                    removed, done = await session.sweep_interrupted(view.id, spec)
            except Exception as exc:  # logged: the next pass, or the next backup, tries again
                log.warning("could not sweep job %s's temporaries: %s", view.id, exc)
                continue
            for what in removed:
                log.info("swept %s of interrupted job %s", what, view.id)
            if done:
                log.info("nothing of interrupted job %s is left", view.id)
                return

    def _take_instance_lock(self) -> None:
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise AlreadyRunning(pid, str(self.paths.socket)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd  # held (open) for the daemon's life; the kernel drops it on death

    async def _watch_idle(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, max(self.idle / 4, 0.2)))
            if self.runner.running or self.clients.count:
                self._last_busy = time.monotonic()
            elif time.monotonic() - self._last_busy > self.idle:
                log.info("idle for %.0f s: exiting", self.idle)
                self._stopping.set()
                return

    async def _cancel_all(self) -> None:
        running = self.runner.running
        for view in running:
            self.runner.cancel(view.id)
        if running:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(self.runner.wait(v.id) for v in running)),
                                       STOP_GRACE)

    async def _hang_up(self) -> None:
        """Close every client connection and let its handler end by itself."""
        for writer in list(self.clients.writers):
            writer.close()
        for sub in self.clients.subscribers:
            sub.queue.put_nowait(None)
        if self.clients.handlers:
            await asyncio.wait(self.clients.handlers, timeout=5)

    # -- events --------------------------------------------------------------------------------
    def _event_from_any_thread(self, event: JobEvent) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._event, event)

    def _event(self, event: JobEvent) -> None:
        assert self.journal is not None
        self.journal.record(event)
        if event.kind == EventKind.FINISHED.value:
            with contextlib.suppress(KeyError):
                self.journal.record_calls(self.runner.events(event.job_id))
        for sub in self.clients.subscribers:
            if sub.job_id in (None, event.job_id):
                sub.queue.put_nowait(event)

    # -- clients -------------------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients.count += 1
        task = asyncio.current_task()
        assert task is not None
        self.clients.handlers.add(task)
        self.clients.writers.add(writer)
        try:
            while line := await reader.readline():
                if not line.endswith(b"\n"):
                    break  # cut off mid-line: the client went away
                if not await self._answer(line, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            log.info("client gone: %s", type(exc).__name__)
        finally:
            self.clients.count -= 1
            self.clients.handlers.discard(task)
            self.clients.writers.discard(writer)
            self._last_busy = time.monotonic()
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(self, line: bytes, writer: asyncio.StreamWriter) -> bool:
        """Answer one request line; False when the connection should end."""
        try:
            request = decode_request(line)
            op = request["op"]
            if op == "subscribe":
                return await self._subscribe(request, writer)
            reply = await self._dispatch(op, request)
        except ProtocolError as exc:
            log.warning("bad request: %s", exc)
            reply = {"ok": False, "error": str(exc)}
        except StrongroomError as exc:
            reply = {"ok": False, "error": str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("bad request: %s %s", type(exc).__name__, exc)
            reply = {"ok": False, "error": f"bad request: {type(exc).__name__} {exc}"}
        writer.write(encode(reply))
        await writer.drain()
        return True

    async def _dispatch(self, op: str, request: dict[str, Any]) -> dict[str, Any]:
        if op == "hello":
            return {"ok": True, "pid": os.getpid(), "started": self.started,
                    "socket": str(self.paths.socket), "running": len(self.runner.running),
                    "clients": self.clients.count, "idle": self.idle}
        if op == "submit":
            return {"ok": True, "job": self._submit(JobSpec.from_dict(request["spec"]),
                                                     JobContext.from_dict(request["context"]))}
        if op == "list":
            views = self._views(-1 if request.get("all") else LIST_DEFAULT)
            return {"ok": True, "jobs": [v.summary() for v in views]}
        if op == "events":
            return {"ok": True, "events": [e.to_dict() for e in
                                           self._events(self._job(request["job"]),
                                                        int(request.get("since", 0)))]}
        if op == "cancel":
            job_id = self._job(request["job"])
            return {"ok": True, "job": job_id, "cancelled": self.runner.cancel(job_id)}
        if op == "stop":
            self._stopping.set()
            return {"ok": True, "running": len(self.runner.running)}
        raise ProtocolError(f"unknown op {op!r}")

    async def _subscribe(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        job_id = self._job(request["job"]) if request.get("job") else None
        since = int(request.get("since", 0))
        sub = _Subscriber(asyncio.Queue(), job_id)
        self.clients.subscribers.append(sub)
        try:
            writer.write(encode({"ok": True, "job": job_id}))
            backlog = self._events(job_id, since) if job_id else []
            for event in backlog:
                writer.write(encode({"event": event.to_dict()}))
            if job_id and (backlog and backlog[-1].kind == EventKind.FINISHED.value
                           or self._finished(job_id)):
                writer.write(encode({"end": True}))
                await writer.drain()
                return True
            await writer.drain()
            last = backlog[-1].seq if backlog else since
            while True:
                event = await sub.queue.get()
                if event is None:
                    return False  # the daemon is stopping
                if job_id and event.seq <= last:
                    continue
                writer.write(encode({"event": event.to_dict()}))
                if job_id and event.kind == EventKind.FINISHED.value:
                    writer.write(encode({"end": True}))
                    await writer.drain()
                    return True
                await writer.drain()
        finally:
            self.clients.subscribers.remove(sub)

    # -- jobs ----------------------------------------------------------------------------------
    def _submit(self, spec: JobSpec, context: JobContext) -> str:
        params_of(spec)  # a bad spec is refused now, not as a failed job
        if context.environment != self.environment:
            raise UsageError("the running daemon was started with other Scaleway or folder "
                             "settings (SCW_*, XDG_* variables): stop it with `strongroom "
                             "daemon --stop`, or run with --no-daemon (STRONGROOM_NO_DAEMON=1)")
        session = self._session(context)
        title = spec.title or spec.kind

        def work(reporter: Reporter) -> Any:
            return session.execute(spec, reporter)

        job_id = self.runner.submit(JobSpec(spec.kind, spec.params, title), work)
        assert self.journal is not None
        self.journal.set_where(job_id, context.store_url, context.profile)
        log.info("job %s submitted: %s", job_id, title)
        return job_id

    def _session(self, context: JobContext) -> Session:
        secret = hashlib.sha256((context.passphrase or "").encode()).hexdigest()
        key = (context.store_url, context.profile or "", secret)
        session = self.sessions.get(key)
        if session is not None:
            session.settings = load_settings()  # buckets changed since: the user's file now
        else:
            passphrase = context.passphrase
            source: Callable[[], str] | None = (lambda: passphrase) if passphrase else None  # type: ignore[return-value]
            session = Session(store_url=context.store_url, profile=context.profile,
                              passphrase=source)
            self.sessions[key] = session
        return session

    def _views(self, limit: int = -1) -> list[JobView]:
        """The newest ``limit`` jobs (-1: all), live ones and the journal's."""
        live = {v.id: v for v in self.runner.views()}
        assert self.journal is not None
        past = [v for v in self.journal.views(limit) if v.id not in live]
        views = sorted([*live.values(), *past], key=lambda v: v.created, reverse=True)
        return views if limit < 0 else views[:limit]

    def _job(self, ref: str) -> str:
        """A job id from its id or a unique prefix of at least 6 characters (ids only: no
        job's events are read to find it)."""
        ref = str(ref)
        assert self.journal is not None
        ids = list(dict.fromkeys([v.id for v in self.runner.views()] + self.journal.job_ids()))
        if ref in ids:
            return ref
        if len(ref) < 6:
            raise UsageError(f"job {ref!r}: give at least 6 characters of its id")
        matches = [i for i in ids if i.startswith(ref)]
        if not matches:
            raise UsageError(f"no job {ref!r}: `strongroom jobs --all` lists them")
        if len(matches) > 1:
            raise UsageError(f"job {ref!r} is ambiguous ({len(matches)} jobs): give more of it")
        return matches[0]

    def _events(self, job_id: str, since: int) -> list[JobEvent]:
        try:
            return self.runner.events(job_id, since)
        except KeyError:
            assert self.journal is not None
            return self.journal.events(job_id, since)

    def _finished(self, job_id: str) -> bool:
        try:
            return self.runner.view(job_id).state in FINISHED
        except KeyError:
            return True  # only in the journal: it ended before this daemon started


def default_idle() -> float:
    """$STRONGROOM_DAEMON_IDLE seconds, else ten minutes."""
    try:
        return float(os.environ.get("STRONGROOM_DAEMON_IDLE") or DEFAULT_IDLE)
    except ValueError:
        raise UsageError("STRONGROOM_DAEMON_IDLE must be a number of seconds") from None


def run_daemon(idle: float | None = None, paths: DaemonPaths | None = None) -> int:
    """Run in the foreground until stopped or idle. 0 also when one already runs."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    daemon = Daemon(paths, default_idle() if idle is None else idle)
    try:
        asyncio.run(daemon.serve())
    except AlreadyRunning as exc:
        print(f"strongroom: {exc}", flush=True)
    return 0
