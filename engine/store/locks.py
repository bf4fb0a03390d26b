"""Store locks: ``locks/<32 hex>`` files holding a small JSON document.

A backup (or restore, check, forget) holds a shared lock: many may run at once. Maintenance
that must be alone (changing the passphrase) holds an exclusive lock. A prune holds a prune
lock: shared with backups and the like, exclusive with other prunes and exclusive locks. (It
is written with ``"exclusive": true`` so that a Strongroom from before prune, which would not
honour garbage lists, waits for it; see docs/FORMAT.md.) A lock is stale when it was not
refreshed for STALE_SECONDS, or when it belongs to a process of this host that no longer runs.

A lock that cannot be refreshed, for whatever reason, is lost (restic's rule): others may soon
judge it stale and, say, prune under us. The refresher records why; the operation calls
:meth:`StoreLock.check` at its steps and stops with :class:`LockLost`.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from dataclasses import dataclass

from engine.errors import OperationError
from engine.store.backends.base import Backend, NotFound, process_gone
from engine.store.crypto import IntegrityError, Sealer

STALE_SECONDS = 30 * 60
REFRESH_SECONDS = 5 * 60
GARBAGE_VERSION = 2  # a lock of version ≥ 2 knows garbage lists (a Strongroom that has prune)
LOCK_VERSION = 3  # 3: who holds it (host, pid) is sealed, not plain text


def lock_ad(name: str) -> bytes:
    return b"strongroom lock " + bytes.fromhex(name.rsplit("/", 1)[-1])


def _open_holder(name: str, doc: dict, sealer: Sealer | None) -> dict:
    """``doc`` with its sealed ``holder`` (host, pid) opened into it when we can: a lock we
    cannot open (no key, damaged) simply has no known holder, so it is stale only by time."""
    sealed = doc.get("holder")
    if not isinstance(sealed, str) or sealer is None:
        return doc
    try:
        holder = json.loads(sealer.open_object(base64.b64decode(sealed), lock_ad(name),
                                               f"lock {name}"))
    except (IntegrityError, ValueError, TypeError):
        return doc
    if isinstance(holder, dict):
        return {**doc, "host": holder.get("host"), "pid": holder.get("pid")}
    return doc


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


@dataclass
class LockInfo:
    """A lock file found in the store, not stale."""

    name: str
    doc: dict

    @property
    def knows_garbage(self) -> bool:
        """Whether its holder honours garbage lists (a Strongroom that has prune)."""
        try:
            return int(self.doc.get("version", 1)) >= GARBAGE_VERSION
        except (TypeError, ValueError):
            return False


# How long the second look waits on a backend without conditional writes (seconds).
SETTLE_SECONDS = 1.0


def lock_settle(backend: Backend) -> float:
    """The pause before the second look at ``locks/``: none where creates are conditional (a
    local disk; S3 that honours If-None-Match), SETTLE_SECONDS elsewhere."""
    return SETTLE_SECONDS if getattr(backend, "conditional_writes", True) is False else 0.0


def live_locks(backend: Backend, sealer: Sealer | None = None) -> list[LockInfo]:
    """The store's locks that are not stale (stale ones are deleted on the way); ``sealer``
    opens who holds each (host and pid, for staleness and for messages)."""
    now, found = time.time(), []
    for stat in backend.list("locks/"):
        try:
            doc = json.loads(backend.get(stat.name))
        except (NotFound, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        doc = _open_holder(stat.name, doc, sealer)
        if _is_stale(doc, now):
            backend.delete(stat.name)
            continue
        found.append(LockInfo(stat.name, doc))
    return found


class StoreLock:
    def __init__(self, backend: Backend, exclusive: bool, prune: bool = False,
                 sealer: Sealer | None = None):
        """``sealer`` seals who holds the lock (without one, host and pid are written in plain
        text, as a version 2 lock)."""
        self.backend, self.exclusive, self.prune = backend, exclusive, prune
        self.sealer = sealer
        self.name = f"locks/{os.urandom(16).hex()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost: str | None = None  # why the refresher gave up, once it has
        self._refreshed = time.time()

    def _doc(self) -> bytes:
        holder = {"host": socket.gethostname(), "pid": os.getpid()}
        doc: dict = {"exclusive": self.exclusive or self.prune, "time": time.time(),
                     "version": LOCK_VERSION}
        if self.sealer is None:
            doc |= holder | {"version": GARBAGE_VERSION}
        else:
            doc["holder"] = base64.b64encode(self.sealer.seal_object(
                json.dumps(holder).encode(), lock_ad(self.name), compress=False)).decode()
        if self.prune:
            doc["prune"] = True
        return json.dumps(doc).encode()

    def acquire(self) -> "StoreLock":
        self._refreshed = time.time()
        # exclusive: a conditional create on S3, so no one else's lock is ever overwritten
        self.backend.put(self.name, self._doc(), exclusive=True)
        try:
            self._check_others()
            settle = lock_settle(self.backend)
            if settle:
                # restic's second look: where writes are not conditional, listings may be
                # too (an S3 that is only eventually consistent); a rival lock written at the
                # same moment shows by now, and then both back off
                time.sleep(settle)
                self._check_others()
        except BaseException:
            self.backend.delete(self.name)
            raise
        self._thread = threading.Thread(target=self._refresh, name="strongroom-lock", daemon=True)
        self._thread.start()
        return self

    def _check_others(self) -> None:
        for other in live_locks(self.backend, self.sealer):
            if other.name == self.name:
                continue
            doc = other.doc
            theirs_prune = bool(doc.get("prune"))
            theirs_exclusive = bool(doc.get("exclusive")) and not theirs_prune
            if self.exclusive:
                conflict = True
            elif self.prune:
                conflict = theirs_prune or theirs_exclusive
            else:
                conflict = theirs_exclusive
            if conflict:
                kind = ("a prune" if theirs_prune else
                        "an exclusive" if theirs_exclusive else "a")
                raise LockedError(
                    f"the store is in use ({kind} lock held by pid {doc.get('pid')} on "
                    f"{doc.get('host')}): wait for it to finish, or remove {other.name} from "
                    "the store if that process is gone")

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            try:
                # never re-created once removed (conditional on S3: If-Match our last write)
                self.backend.replace(self.name, self._doc())
            except NotFound:
                self._lost = (f"{self.name} was removed by another process, which judged "
                              "it stale")
                return
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
