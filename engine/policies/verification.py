"""When a check --read-data last covered each snapshot, kept in the store (``verified/``), so
that runs on other machines (a Kubernetes pod has no lasting cache) know it too.

Each record is a sealed object ``verified/<32 hex>`` holding {"time", "snapshots": [ids]};
records are small and few (one per verification), and a record naming a forgotten snapshot
is harmless. Damaged records are ignored: they only make a verification look older.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from engine.store.backends.base import NotFound
from engine.store.crypto import IntegrityError

if TYPE_CHECKING:
    from engine.store import Store

PREFIX = "verified/"


def _ad(name: str) -> bytes:
    return b"strongroom verified " + bytes.fromhex(name.rsplit("/", 1)[-1])


def record_verified(store: Store, when: str, snapshot_ids: list[str]) -> str:
    name = f"{PREFIX}{os.urandom(16).hex()}"
    doc = json.dumps({"time": when, "snapshots": sorted(snapshot_ids)}).encode()
    store.backend.put(name, store.sealer.seal_object(doc, _ad(name)))
    return name


def verified_times(store: Store) -> dict[str, str]:
    """Snapshot id → the newest time a recorded check --read-data covered it."""
    newest: dict[str, str] = {}
    for stat in store.backend.list(PREFIX):
        try:
            doc = json.loads(store.sealer.open_object(store.backend.get(stat.name),
                                                      _ad(stat.name), stat.name))
            when, ids = str(doc["time"]), list(doc["snapshots"])
        except (NotFound, IntegrityError, ValueError, KeyError, TypeError):
            continue
        for snap_id in ids:
            if when > newest.get(snap_id, ""):
                newest[snap_id] = when
    return newest
