"""The store: encrypted, deduplicated, content-defined-chunked image backups.

Public API (the contract other areas code against)::

    from engine.store import Store, SnapshotInfo, BackupResult, RestoreResult, CheckReport, ImageReader

The on-disk format is described in docs/FORMAT.md.
"""
from engine.store.restorer import ImageReader
from engine.store.snapshot import BackupResult, CheckReport, RestoreResult, SnapshotInfo
from engine.store.store import Store

__all__ = ["Store", "SnapshotInfo", "BackupResult", "RestoreResult", "CheckReport", "ImageReader"]
