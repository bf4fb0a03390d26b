"""Typed errors of the explore area: each says what is in the way and what to do, on one line."""
from __future__ import annotations

from engine.errors import OperationError, UsageError


class ExploreError(OperationError):
    """Something inside the image cannot be read as files."""


class EncryptedVolumeError(ExploreError):
    """The volume holds a LUKS header: its files are encrypted and cannot be listed."""


class NoFilesystemError(ExploreError):
    """The volume holds no filesystem at all (zeros, or data we do not recognise)."""


class UnsupportedFilesystemError(ExploreError):
    """The volume holds a filesystem we recognise but cannot read."""


class UnsupportedImageError(ExploreError):
    """The image container itself cannot be decoded (e.g. a QCOW2 with a backing file)."""


class PathNotFoundError(ExploreError):
    """A path inside the image does not exist."""


class AmbiguousNameError(PathNotFoundError):
    """Two entries of one directory share a name (only a damaged or crafted image): the path
    must name one by inode number (``<N>``)."""


class DamagedDataError(ExploreError):
    """The filesystem's own structures are damaged where an entry lives (a bad extent
    header, a directory block that does not parse): that entry cannot be read, others can."""


class NotADirectoryInImageError(ExploreError):
    """A directory operation was asked of something that is not a directory."""


class UnsafeNameError(ExploreError):
    """A name in the image cannot be written safely (``..``, ``/``, NUL, empty)."""


class BadPathError(UsageError):
    """A path given on the command line is malformed."""
