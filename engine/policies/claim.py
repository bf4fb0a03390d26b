"""A run's claim on one volume, so that two runs never back the same volume up at once.

A claim is a store lock (``locks/<random>``, shared: it conflicts with no backup) that also
carries a keyed hash of the volume id. Taking one writes it, then lists the live locks: if
another claim on the same volume is there, ours is withdrawn. Two runs that write at the same
moment both see each other and both withdraw (then look again after a random pause), so at
most one ever proceeds; a claim whose run died goes stale as any lock does (see locks.py).
The run re-reads the store's snapshots after taking the claim: a backup that another run
finished just before is seen, and the volume is no longer due.
"""
from __future__ import annotations

import json
import random
import time
from typing import TYPE_CHECKING

import blake3

from engine.store.locks import LockedError, StoreLock, live_locks

if TYPE_CHECKING:
    from engine.store import Store

RETRIES = 3


class ClaimTaken(LockedError):
    """Another run holds a claim on the volume."""


def claim_key(store: Store, subject: str) -> str:
    key = blake3.blake3(store.keys.master, derive_key_context="strongroom 2026 run claim").digest()
    return blake3.blake3(subject.encode(), key=key).hexdigest()[:32]


class Claim(StoreLock):
    def __init__(self, store: Store, subject: str) -> None:
        super().__init__(store.backend, exclusive=False, sealer=store.sealer)
        self.key = claim_key(store, subject)

    def _doc(self) -> bytes:
        doc = json.loads(super()._doc())
        doc["claim"] = self.key
        return json.dumps(doc).encode()

    def _check_others(self) -> None:
        super()._check_others()
        if self._others():
            raise ClaimTaken("another run is at work on it")

    def _others(self) -> bool:
        return any(lock.doc.get("claim") == self.key and lock.name != self.name
                   for lock in live_locks(self.backend, self.sealer))

    def take(self, pause: float = 1.0) -> "Claim":
        """Acquire, or raise ClaimTaken when another run holds the volume."""
        for _ in range(RETRIES):
            try:
                return self.acquire()
            except ClaimTaken:
                time.sleep(random.uniform(pause / 5, pause))
                if self._others():  # a live run holds it: not ours to do
                    raise
        raise ClaimTaken("other runs kept claiming it at the same moment")
