"""Where store files live: one small interface (``base``) and its implementations, the local
directory (``local``) and S3 (``s3``). ``open_backend`` picks one for a store URL.

Dependencies point one way: ``local`` and ``s3`` import ``base``; this module imports all three.
"""
from __future__ import annotations

from engine.errors import UsageError
from engine.store.backends.base import (Backend, Buffer, NotFound, PageBuffer, Stat, TempFile,
                                        is_disk_full)
from engine.store.backends.local import LocalBackend
from engine.store.backends.s3 import S3Backend

__all__ = ["Backend", "Buffer", "LocalBackend", "NotFound", "PageBuffer", "S3Backend", "Stat",
           "TempFile", "is_disk_full", "open_backend"]


def open_backend(url: str, *, profile: str | None = None, create_bucket: bool = False) -> Backend:
    """A backend for a store URL: ``s3://bucket/prefix`` or a local directory path. ``profile``:
    the Scaleway profile an S3 store is reached with; ``create_bucket``: its ``create()`` makes
    a missing bucket."""
    if url.startswith("s3://"):
        return S3Backend(url, profile=profile, create_bucket=create_bucket)
    if create_bucket:
        raise UsageError("--create-bucket is for a store on Object Storage (s3://bucket/prefix)")
    if "://" in url and not url.startswith("file://"):
        raise UsageError(f"unsupported store URL {url!r}: use a directory path or s3://bucket/prefix")
    return LocalBackend(url.removeprefix("file://"))
