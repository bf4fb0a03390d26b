"""Store locks: ``locks/<32 hex>`` files holding a small JSON document.

A backup (or restore, or check) holds a shared lock: many may run at once. Maintenance that must
be alone (changing the passphrase) holds an exclusive lock. A lock is stale when it was not
refreshed for STALE_SECONDS, or when it belongs to a process of this host that no longer runs.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time

from engine.errors import OperationError
from engine.store.backends.base import Backend, NotFound, process_gone

STALE_SECONDS = 30 * 60
REFRESH_SECONDS = 5 * 60


class LockedError(OperationError):
    """Another process holds a conflicting lock."""


def _is_stale(doc: dict, now: float) -> bool:
    if now - float(doc.get("time", 0)) > STALE_SECONDS:
        return True
    try:
        return process_gone(str(doc.get("host")), int(doc.get("pid", 0)))
    except (TypeError, ValueError):
        return False


class StoreLock:
    def __init__(self, backend: Backend, exclusive: bool):
        self.backend, self.exclusive = backend, exclusive
        self.name = f"locks/{os.urandom(16).hex()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _doc(self) -> bytes:
        return json.dumps({"exclusive": self.exclusive, "host": socket.gethostname(),
                           "pid": os.getpid(), "time": time.time()}).encode()

    def acquire(self) -> "StoreLock":
        self.backend.put(self.name, self._doc())
        try:
            self._check_others()
        except BaseException:
            self.backend.delete(self.name)
            raise
        self._thread = threading.Thread(target=self._refresh, name="strongroom-lock", daemon=True)
        self._thread.start()
        return self

    def _check_others(self) -> None:
        now = time.time()
        for stat in self.backend.list("locks/"):
            if stat.name == self.name:
                continue
            try:
                doc = json.loads(self.backend.get(stat.name))
            except (NotFound, ValueError):
                continue
            if _is_stale(doc, now):
                self.backend.delete(stat.name)
                continue
            if self.exclusive or doc.get("exclusive"):
                kind = "an exclusive" if doc.get("exclusive") else "a"
                raise LockedError(
                    f"the store is in use ({kind} lock held by pid {doc.get('pid')} on "
                    f"{doc.get('host')}): wait for it to finish, or remove {stat.name} from the "
                    f"store if that process is gone")

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            try:
                self.backend.put(self.name, self._doc())
            except OSError:
                pass

    def release(self) -> None:
        self._stop.set()
        self.backend.delete(self.name)

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
