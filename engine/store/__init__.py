"""The store: encrypted, deduplicated, content-defined-chunked image backups.

Public API (the contract other areas code against)::

    from engine.store import Store, SnapshotInfo, BackupResult, RestoreResult, CheckReport
    from engine.store import ImageReader, ForgetGroup, ForgetReport, PruneReport

The on-disk format is described in docs/FORMAT.md. The names are imported on first use
(PEP 562): ``engine.store.keyahead`` must be importable without the rest of the store, so that
a command can start the key derivation before it imports the store's ~65 ms of modules.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.store.restorer import ImageReader
    from engine.store.snapshot import (BackupResult, CheckReport, ForgetGroup, ForgetReport,
                                       PruneReport, RestoreResult, SnapshotInfo)
    from engine.store.store import Store

_FROM_SNAPSHOT = ("SnapshotInfo", "BackupResult", "RestoreResult", "CheckReport", "ForgetGroup",
                  "ForgetReport", "PruneReport")

__all__ = ["Store", "SnapshotInfo", "BackupResult", "RestoreResult", "CheckReport", "ImageReader",
           "ForgetGroup", "ForgetReport", "PruneReport"]


def __getattr__(name: str) -> object:
    value: object
    if name == "Store":
        from engine.store.store import Store as value
    elif name == "ImageReader":
        from engine.store.restorer import ImageReader as value
    elif name in _FROM_SNAPSHOT:
        from engine.store import snapshot
        value = getattr(snapshot, name)
    else:
        raise AttributeError(f"module 'engine.store' has no attribute {name!r}")
    globals()[name] = value
    return value
