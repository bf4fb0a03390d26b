"""Store locks: ``locks/<32 hex>`` files holding a small JSON document.

A backup (or restore, or check) holds a shared lock: many may run at once. Maintenance that must
be alone (changing the passphrase) holds an exclusive lock. A lock is stale when it was not
refreshed for STALE_SECONDS, or when it belongs to a process of this host that no longer runs.

A lock that cannot be refreshed, for whatever reason, is lost (restic's rule): others may soon
judge it stale and, say, prune under us. The refresher records why; the operation calls
:meth:`StoreLock.check` at its steps and stops with :class:`LockLost`.
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


class LockLost(OperationError):
    """Our lock could not be kept: the operation must stop."""


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
        self._lost: str | None = None  # why the refresher gave up, once it has
        self._refreshed = time.time()

    def _doc(self) -> bytes:
        return json.dumps({"exclusive": self.exclusive, "host": socket.gethostname(),
                           "pid": os.getpid(), "time": time.time()}).encode()

    def acquire(self) -> "StoreLock":
        self._refreshed = time.time()
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
                if self.backend.stat(self.name) is None:
                    self._lost = (f"{self.name} was removed by another process, which judged "
                                  "it stale")
                    return
                self.backend.put(self.name, self._doc())
            except Exception as exc:  # any failure: botocore's errors are not OSError
                reason = " ".join(str(exc).split()) or "no detail"
                self._lost = f"refreshing {self.name} failed: {type(exc).__name__}: {reason}"
                return
            self._refreshed = time.time()

    def check(self) -> None:
        """Raise :class:`LockLost` if the lock can no longer be counted on: call it at each
        step of the operation, and before anything it writes is made visible."""
        why = self._lost
        if why is None and time.time() - self._refreshed > STALE_SECONDS:
            why = (f"not refreshed for {STALE_SECONDS // 60} minutes, so others may treat it "
                   "as stale")
        if why is not None:
            raise LockLost(f"lost the store lock ({why}): stopped, since another process may "
                           f"now change the store; run it again")

    def release(self) -> None:
        """Stop refreshing, then remove the lock file. A file left behind (the store
        unreachable) is removed as stale later: that is not an error of the operation."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)  # a refresh in flight must not re-create the file
        try:
            self.backend.delete(self.name)
        except Exception:
            pass

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
