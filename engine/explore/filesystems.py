"""Filesystems: recognise what a volume holds, open ext2/3/4 (dissect.extfs) and XFS
(dissect.xfs, when installed), explain the rest.

Every filesystem is presented through ``FsNode`` so the explorer above never sees dissect types.
"""
from __future__ import annotations

import contextlib
import stat as statmod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from dissect.extfs import ExtFS

try:  # XFS is optional: without dissect.xfs an XFS volume is named but not opened
    from dissect.xfs import XFS
except ImportError:  # pragma: no cover - depends on the installation
    XFS = None

from engine.errors import StrongroomError
from engine.explore.errors import (DamagedDataError, EncryptedVolumeError, NoFilesystemError,
                                   UnsupportedFilesystemError)

PROBE_BYTES = 128 * 1024

# (offset, magic, name) of filesystems and containers we can name but not read.
XFS_MAGIC = b"XFSB"
KNOWN_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, XFS_MAGIC, "XFS"),
    (0x10040, b"_BHRfS_M", "Btrfs"),
    (3, b"NTFS    ", "NTFS"),
    (0x52, b"FAT32   ", "FAT32"),
    (0x36, b"FAT16   ", "FAT16"),
    (0x36, b"FAT12   ", "FAT12"),
    (4086, b"SWAPSPACE2", "Linux swap"),
    (0x8001, b"CD001", "ISO 9660"),
    (0x400, b"\x10\x20\xf5\xf2", "F2FS"),
    (0x2000 + 0x18, b"\x30\x31\x42\x53", "bcachefs"),
    (0, b"hsqs", "SquashFS"),
    (0x10000, b"ReIsEr", "ReiserFS"),
)
LUKS_MAGICS = (b"LUKS\xba\xbe", b"SKUL\xba\xbe")
EXT_MAGIC_OFFSET, EXT_MAGIC = 0x438, b"\x53\xef"


def probe(stream: BinaryIO) -> str:
    """'ext' or 'xfs', or raise a typed error saying what the volume holds instead."""
    stream.seek(0)
    head = stream.read(PROBE_BYTES)
    if head[:6] in LUKS_MAGICS:
        version = int.from_bytes(head[6:8], "big") if len(head) >= 8 else 0
        raise EncryptedVolumeError(
            f"the volume is encrypted (LUKS{version or ''}), e.g. by the CSI driver's at-rest "
            "encryption: its files cannot be listed; restore the whole image and open it with "
            "its key (cryptsetup open)")
    if head[EXT_MAGIC_OFFSET:EXT_MAGIC_OFFSET + 2] == EXT_MAGIC:
        return "ext"
    if head[:4] == XFS_MAGIC and XFS is not None:
        return "xfs"
    for offset, magic, name in KNOWN_SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            raise UnsupportedFilesystemError(
                f"the volume holds a {name} filesystem, which this version cannot read; "
                "restore the whole image instead (restore-image)")
    if not head.strip(b"\x00"):
        raise NoFilesystemError("no filesystem: the volume starts with zeros (never formatted?)")
    raise NoFilesystemError("no filesystem recognised on the volume (unknown data); "
                            "restore the whole image instead (restore-image)")


@dataclass
class FsNode:
    """One inode of an opened filesystem (a dissect extfs or xfs INode, which share their
    shape: filename, inum, size, mtime_ns, link, iterdir, open), as the explorer needs it."""

    inode: Any

    @property
    def mode(self) -> int:
        raw = self.inode.inode
        return int(raw.i_mode if hasattr(raw, "i_mode") else raw.di_mode)

    @property
    def kind(self) -> str:
        fmt = statmod.S_IFMT(self.mode)
        if fmt == statmod.S_IFREG:
            return "file"
        if fmt == statmod.S_IFDIR:
            return "dir"
        if fmt == statmod.S_IFLNK:
            return "symlink"
        return "other"

    @property
    def size(self) -> int:
        return int(self.inode.size)

    @property
    def mtime_ns(self) -> int:
        return int(self.inode.mtime_ns)

    @property
    def atime_ns(self) -> int:
        return int(self.inode.atime_ns)

    @property
    def link_target(self) -> str | None:
        return self.inode.link if self.kind == "symlink" else None

    def children(self) -> list[tuple[str, "FsNode"]]:
        # The first '.' and '..' are the filesystem's own links, never content; any further
        # entry of that name is something a crafted image slipped in: listed (its path
        # escapes the name), never taken as a step.
        out: list[tuple[str, FsNode]] = []
        links: set[str] = set()
        for child in self.inode.iterdir():
            name = child.filename
            if name in (".", "..") and name not in links:
                links.add(name)
                continue
            out.append((name, FsNode(child)))
        return out

    def open(self) -> BinaryIO:
        return self.inode.open()


@contextlib.contextmanager
def damage_as_error(what: str, where: str = "") -> Iterator[None]:
    """dissect meets a damaged structure with its own exceptions (or struct/EOF errors): make
    them a typed error about this one entry, so a listing, walk or restore can go on around
    it. The store's own errors (a chunk failing verification) pass unchanged."""
    try:
        yield
    except StrongroomError:
        raise
    except Exception as exc:
        raise DamagedDataError(f"{where + ': ' if where else ''}the {what} cannot be read, the "
                               f"filesystem is damaged there ({type(exc).__name__}: {exc})"
                               ) from None


class ExtFilesystem:
    """An ext2/3/4 filesystem on a volume."""

    kind = "ext4"

    def __init__(self, stream: BinaryIO):
        try:
            self.fs = ExtFS(stream)
        except Exception as exc:
            raise UnsupportedFilesystemError(f"the ext filesystem cannot be read: {exc}") from None
        self.kind = {2: "ext2", 3: "ext3", 4: "ext4"}.get(getattr(self.fs, "type", 4), "ext4")
        self.root = FsNode(self.fs.root)


class XfsFilesystem:
    """An XFS filesystem on a volume (the CSI driver can format volumes as XFS)."""

    kind = "xfs"

    def __init__(self, stream: BinaryIO):
        try:
            self.fs = XFS(stream)
            self.root = FsNode(self.fs.root)
            self.root.mode  # reads the root inode: a damaged filesystem fails here, clearly
        except Exception as exc:
            raise UnsupportedFilesystemError(f"the XFS filesystem cannot be read: {exc}") from None


Filesystem = ExtFilesystem | XfsFilesystem


def open_filesystem(stream: BinaryIO) -> Filesystem:
    if probe(stream) == "xfs":
        return XfsFilesystem(stream)
    return ExtFilesystem(stream)
