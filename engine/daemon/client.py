"""Talking to the daemon: start it when it is not running, submit jobs, follow their events.

Blocking (a socket and a file), for the CLI and for the app's thread workers.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from engine.daemon.paths import DaemonPaths, daemon_paths, private_dir
from engine.daemon.protocol import MAX_LINE, JobContext, encode, env_fingerprint
from engine.errors import OperationError, UsageError
from engine.jobs import JobEvent, JobSpec

START_TIMEOUT = 30.0


class DaemonUnavailable(OperationError):
    """No daemon answers on the socket."""


class DaemonClient:
    def __init__(self, paths: DaemonPaths | None = None, timeout: float | None = None) -> None:
        self.paths = paths or daemon_paths()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(str(self.paths.socket))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            self._sock.close()
            raise DaemonUnavailable(f"no daemon at {self.paths.socket} "
                                    f"({type(exc).__name__})") from None
        except PermissionError:
            self._sock.close()
            raise UsageError(f"cannot connect to {self.paths.socket}: permission denied "
                             "(it belongs to another user)") from None
        self._sock.settimeout(timeout)
        self._file = self._sock.makefile("rwb")

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def interrupt(self) -> None:
        """From any thread: end what this client is waiting for (a ``subscribe`` stream ends
        with DaemonUnavailable). Closing the file instead could block on the reader's lock."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed or never connected: nothing waits

    def __enter__(self) -> "DaemonClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------------
    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        self._send({"op": op, **fields})
        return self._reply()

    def hello(self) -> dict[str, Any]:
        return self.request("hello")

    def submit(self, spec: JobSpec, context: JobContext) -> str:
        return str(self.request("submit", spec=spec.to_dict(), context=context.to_dict())["job"])

    def jobs(self, all_jobs: bool = False) -> list[dict[str, Any]]:
        return list(self.request("list", all=all_jobs)["jobs"])

    def events(self, job: str, since: int = 0) -> list[JobEvent]:
        return [JobEvent.from_dict(e) for e in self.request("events", job=job,
                                                            since=since)["events"]]

    def cancel(self, job: str) -> bool:
        return bool(self.request("cancel", job=job)["cancelled"])

    def stop(self) -> dict[str, Any]:
        return self.request("stop")

    def subscribe(self, job: str | None, since: int = 0,
                  ready: Callable[[], None] | None = None) -> Iterator[JobEvent]:
        """The job's events above ``since``, then live ones until it finishes (``job`` None:
        every job's, for as long as the caller reads). Use a client for nothing else after.

        ``ready`` is called once the daemon has registered the subscription, before the first
        event is read: a stream of every job sends no backlog, so what happened before is
        read then (on another client), and nothing falls between the two."""
        self._send({"op": "subscribe", "job": job, "since": since})
        self._reply()
        if ready is not None:
            ready()
        while True:
            doc = self._line()
            if doc.get("end"):
                return
            yield JobEvent.from_dict(doc["event"])

    # -- the wire ------------------------------------------------------------------------------
    def _send(self, doc: dict[str, Any]) -> None:
        try:
            self._file.write(encode(doc))
            self._file.flush()
        except OSError as exc:
            raise DaemonUnavailable(f"the daemon went away ({type(exc).__name__})") from None

    def _line(self) -> dict[str, Any]:
        import json

        try:
            line = self._file.readline(MAX_LINE)
        except OSError as exc:
            raise DaemonUnavailable(f"the daemon went away ({type(exc).__name__})") from None
        if not line:
            raise DaemonUnavailable("the daemon closed the connection (stopped or killed)")
        return dict(json.loads(line))

    def _reply(self) -> dict[str, Any]:
        doc = self._line()
        if not doc.get("ok"):
            raise UsageError(str(doc.get("error") or "the daemon refused the request"))
        return doc


def connect(start: bool = True, idle: float | None = None) -> DaemonClient:
    """A client of this user's daemon; with ``start``, the daemon is started when none runs."""
    paths = daemon_paths()
    try:
        return DaemonClient(paths)
    except DaemonUnavailable:
        if not start:
            raise
    start_daemon(paths, idle)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            return DaemonClient(paths)
        except DaemonUnavailable:
            if time.monotonic() > deadline:
                raise DaemonUnavailable(f"the daemon did not start within {START_TIMEOUT:.0f} s; "
                                        f"see its log {paths.log}") from None
            time.sleep(0.05)


def start_daemon(paths: DaemonPaths, idle: float | None = None) -> None:
    """Start the daemon detached: its own session (a closed terminal cannot reach it), no
    terminal, its output in the log under the state dir."""
    private_dir(paths.state)
    command = [sys.executable, "-m", "engine.daemon"]
    if idle is not None:
        command += ["--idle", str(idle)]
    with open(paths.log, "ab") as log:
        os.chmod(paths.log, 0o600)
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True, cwd="/", close_fds=True)


def job_context(store_url: str, profile: str | None, passphrase: str | None) -> JobContext:
    return JobContext(store_url, profile, passphrase, env_fingerprint())
