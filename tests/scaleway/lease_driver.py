"""A flow run in a process of its own, for tests/scaleway/test_leases.py.

    python -m tests.scaleway.lease_driver backup STORE VOLUME_ID ZONE BUCKET HOLD
    python -m tests.scaleway.lease_driver restore STORE SNAPSHOT ZONE BUCKET NAME HOLD AT
    python -m tests.scaleway.lease_driver cleanup ZONE BUCKET

Environment: the sandbox's variables and STRONGROOM_PASSPHRASE. ``backup``: when its transfer
starts, the run writes ``HOLD.held`` and waits (at most 60 s) for ``HOLD.go``, so that a test
can have two runs in their transfer at once; only the store's thread waits, the heartbeat goes
on. Prints the outcome, phases and call log (or the error) as one JSON object. ``cleanup``:
a sweep with no minimum age, printing what it removed. ``restore``: a restore into a volume
named NAME (with a lease of ten minutes, so that only its process's death can free what it
made) that writes ``HOLD.held`` and waits for ``HOLD.go`` at AT: ``upload`` (its first
progress: the multipart upload is open), or the answer of the POST whose path ends with AT
(``import-from-object-storage``: the imported snapshot exists; ``volumes``: the volume does).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from engine.scaleway.api import Apis, RetryPolicy
from engine.scaleway.config import scw_client
from engine.scaleway.flows import backup_volume, cleanup_leftovers, restore_snapshot
from engine.settings import Settings
from engine.store import Store
from tests.scaleway.helpers import FAST

# Short enough that the heartbeat renews many times while the runs are held.
TIMEOUTS = dataclasses.replace(FAST, lease=6.0, heartbeat=0.5)


class HoldingReporter:
    def __init__(self, hold: Path) -> None:
        self.held, self.go = hold.with_suffix(".held"), hold.with_suffix(".go")
        self.calls: list[list[Any]] = []
        self.phases: list[str] = []

    def phase(self, name: str, total: int = 0, message: str = "") -> None:
        self.phases.append(name)

    def progress(self, done: int, total: int | None = None, message: str | None = None,
                 **extra: Any) -> None:
        if self.held.exists():
            return
        self.held.touch()
        deadline = time.monotonic() + 60
        while not self.go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def call(self, method: str, path: str, status: int | str, ms: float) -> None:
        self.calls.append([method, path, status])


# A lease far longer than a test: what a killed restore made is freed by its death alone.
RESTORE_TIMEOUTS = dataclasses.replace(FAST, lease=600.0, heartbeat=0.5)


class HoldAt(HoldingReporter):
    """Holds at the first progress (``upload``), or once a POST whose path ends with ``at`` has
    its answer (in the call's thread: the flow waits, its heartbeat goes on)."""

    def __init__(self, hold: Path, at: str) -> None:
        super().__init__(hold)
        self.at = at

    def progress(self, done: int, total: int | None = None, message: str | None = None,
                 **extra: Any) -> None:
        if self.at == "upload":
            super().progress(done, total, message)

    def call(self, method: str, path: str, status: int | str, ms: float,
             **extra: Any) -> None:
        super().call(method, path, status, ms)
        if method == "POST" and path.rstrip("/").endswith(self.at) and status == 200:
            super().progress(0)


def _apis() -> Apis:
    return Apis(scw_client(), retry=RetryPolicy(attempts=8, base=0.01, cap=0.1))


async def backup(store_url: str, volume_id: str, zone: str, bucket: str, hold: str) -> dict:
    reporter = HoldingReporter(Path(hold))
    store = Store.open(store_url, os.environ["STRONGROOM_PASSPHRASE"])
    try:
        out = await backup_volume(reporter, store=store, client=_apis(), volume_id=volume_id,
                                  zone=zone, bucket=bucket, timeouts=TIMEOUTS,
                                  settings=Settings())
    finally:
        store.close()
    return {"outcome": out.to_dict(), "phases": reporter.phases, "calls": reporter.calls}


async def restore(store_url: str, ref: str, zone: str, bucket: str, name: str, hold: str,
                  at: str) -> dict:
    reporter = HoldAt(Path(hold), at)
    store = Store.open(store_url, os.environ["STRONGROOM_PASSPHRASE"])
    try:
        out = await restore_snapshot(reporter, store=store, client=_apis(), ref=ref, zone=zone,
                                     bucket=bucket, name=name, timeouts=RESTORE_TIMEOUTS,
                                     settings=Settings())
    finally:
        store.close()
    return {"outcome": out.to_dict(), "phases": reporter.phases, "calls": reporter.calls}


async def cleanup(zone: str, bucket: str) -> dict:
    return {"removed": await cleanup_leftovers(_apis(), zone, bucket, min_age=0)}


def main(argv: list[str]) -> int:
    command, *args = argv
    try:
        result = asyncio.run({"backup": backup, "restore": restore,
                              "cleanup": cleanup}[command](*args))
    except Exception as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
