"""The store: encrypted, deduplicated, content-defined-chunked image backups.

Public API (the contract other areas code against)::

    from engine.store import Store, SnapshotInfo, BackupResult, RestoreResult, CheckReport
    from engine.store import ImageReader, ForgetGroup, ForgetReport, PruneReport

The on-disk format is described in docs/FORMAT.md.
"""
from engine.store.restorer import ImageReader
from engine.store.snapshot import (BackupResult, CheckReport, ForgetGroup, ForgetReport,
                                   PruneReport, RestoreResult, SnapshotInfo)
from engine.store.store import Store

__all__ = ["Store", "SnapshotInfo", "BackupResult", "RestoreResult", "CheckReport", "ImageReader",
           "ForgetGroup", "ForgetReport", "PruneReport"]
