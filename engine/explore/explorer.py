"""The explorer: a read-only, thread-safe file view over a disk image.

Addressing (documented choice): when exactly one volume of the image holds a readable
filesystem, paths start at that filesystem's root (``/etc/hosts``), whatever partition it
lives on; cloud images with a small EFI partition next to the root filesystem work as
expected. When several volumes are readable, the root lists them as directories named
``p1``, ``p2`` … (partitions) or ``vg-lv`` (LVM logical volumes), and paths go through them
(``/p2/etc/hosts``).
"""
from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import BinaryIO

from engine.explore.entries import Entry, VolumeInfo
from engine.explore.errors import (EncryptedVolumeError, ExploreError, NoFilesystemError,
                                   NotADirectoryInImageError, PathNotFoundError,
                                   UnsupportedFilesystemError)
from engine.explore.filesystems import Filesystem, FsNode, open_filesystem
from engine.explore.image import open_disk
from engine.explore.volumes import find_volumes

LISTING_CACHE = 512
MAX_LINKS = 40
ROOT_MODE = 0o040555


def split_path(path: str) -> list[str]:
    """'/a//b/./c/../d' → ['a', 'b', 'd']: lexical, so '..' can never climb above the root."""
    parts: list[str] = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


def join_path(parts: list[str]) -> str:
    return "/" + "/".join(parts)


class Explorer:
    """Files of one image. All methods may be called from any thread."""

    def __init__(self, mounts: dict[str, Filesystem], volumes: list[VolumeInfo],
                 image_format: str, image_size: int):
        self.mounts = mounts
        self.volumes = volumes
        self.image_format = image_format
        self.image_size = image_size
        self.single = len(mounts) == 1
        self._lock = threading.RLock()
        self._listings: OrderedDict[tuple[str, int], list[tuple[str, FsNode]]] = OrderedDict()

    # -- lookups ---------------------------------------------------------------------------
    def _children(self, mount: str, node: FsNode) -> list[tuple[str, FsNode]]:
        key = (mount, node.inode.inum)
        with self._lock:
            if key in self._listings:
                self._listings.move_to_end(key)
                return self._listings[key]
            listing = node.children()
            self._listings[key] = listing
            if len(self._listings) > LISTING_CACHE:
                self._listings.popitem(last=False)
            return listing

    def _resolve(self, path: str, follow: bool = False
                 ) -> tuple[str | None, FsNode | None, list[str]]:
        """(mount, node, canonical parts); node None is the virtual root of a multi-volume image.

        Symlinks met on the way are followed inside the image (modern root filesystems link
        /lib to usr/lib); the last component only when ``follow`` is set. An absolute target
        starts again at the root of the same filesystem. Reading is all this does: links
        never lead outside the image.
        """
        parts = split_path(path)
        if self.single:
            mount, todo = next(iter(self.mounts)), parts
            prefix: list[str] = []
        elif not parts:
            return None, None, parts
        else:
            mount, todo, prefix = parts[0], parts[1:], parts[:1]
            if mount not in self.mounts:
                raise PathNotFoundError(f"{join_path(parts)}: no such volume; the image holds "
                                        f"{', '.join(self.mounts)}")
        root = self.mounts[mount].root
        stack: list[tuple[str, FsNode]] = []       # the directories walked so far
        pending = list(todo)
        links = 0
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if stack:
                    stack.pop()
                continue
            here = stack[-1][1] if stack else root
            if here.kind != "dir":
                raise NotADirectoryInImageError(
                    f"{join_path(prefix + [n for n, _ in stack])} is not a directory")
            child = self._child(mount, here, name)
            if child is None:
                raise PathNotFoundError(f"{join_path(parts)}: no such file or directory "
                                        "in the backup")
            if child.kind == "symlink" and (pending or follow):
                links += 1
                if links > MAX_LINKS:
                    raise PathNotFoundError(f"{join_path(parts)}: too many levels of "
                                            "symbolic links")
                target = child.link_target or ""
                if target.startswith("/"):
                    stack = []
                pending = target.split("/") + pending
                continue
            stack.append((name, child))
        node = stack[-1][1] if stack else root
        return mount, node, prefix + [n for n, _ in stack]

    def _child(self, mount: str, node: FsNode, name: str) -> FsNode | None:
        for child_name, child in self._children(mount, node):
            if child_name == name:
                return child
        return None

    def _entry(self, name: str, parts: list[str], node: FsNode) -> Entry:
        return Entry(name=name, path=join_path(parts), type=node.kind, size=node.size,
                     mode=node.mode, mtime_ns=node.mtime_ns, link_target=node.link_target,
                     inode=int(node.inode.inum))

    def _virtual_root(self) -> Entry:
        return Entry(name="/", path="/", type="dir", size=0, mode=ROOT_MODE, mtime_ns=0)

    # -- public API --------------------------------------------------------------------------
    def stat(self, path: str) -> Entry:
        with self._lock:
            mount, node, parts = self._resolve(path)
            if node is None:
                return self._virtual_root()
            return self._entry(parts[-1] if parts else "/", parts, node)

    def listdir(self, path: str = "/", follow: bool = True) -> list[Entry]:
        """Entries of a directory, sorted by name. As ``ls`` does, a file gives itself and a
        symlink to a directory lists the directory; with ``follow=False`` (walking a tree)
        anything but a directory is an error."""
        with self._lock:
            mount, node, parts = self._resolve(path, follow=follow)
            if node is None:
                return [self._entry(name, [name], fs.root) for name, fs in self.mounts.items()]
            if node.kind != "dir":
                if not follow:
                    raise NotADirectoryInImageError(f"{join_path(parts)} is not a directory")
                return [self.stat(path)]  # a file, or a link to one: itself, as ls shows it
            entries = [self._entry(name, parts + [name], child)
                       for name, child in self._children(mount, node)]
        return sorted(entries, key=lambda e: e.name)

    def open(self, path: str) -> BinaryIO:
        """A read-only stream over a regular file's bytes."""
        with self._lock:
            _, node, parts = self._resolve(path, follow=True)
            if node is None or node.kind == "dir":
                raise NotADirectoryInImageError(f"{join_path(parts)} is a directory, not a file")
            if node.kind != "file":
                raise ExploreError(f"{join_path(parts)} is a {node.kind}, not a regular file")
            return LockedReader(node.open(), node.size, self._lock)

    def read_file(self, path: str, limit: int | None = None) -> bytes:
        with self.open(path) as fh:
            return fh.read() if limit is None else fh.read(limit)

    def resolve(self, path: str) -> str:
        """The canonical path of ``path`` inside the image, symlinks followed."""
        with self._lock:
            return join_path(self._resolve(path, follow=True)[2])

    def walk(self, path: str = "/") -> Iterator[Entry]:
        """Every entry below ``path`` (itself followed if a link to a directory), parents
        before children; symlinks inside are listed, never followed."""
        with self._lock:
            _, node, parts = self._resolve(path, follow=True)
        if node is not None and node.kind != "dir":
            return
        seen: set[tuple[str | None, int]] = set()
        stack = [join_path(parts)]
        while stack:
            current = stack.pop()
            with self._lock:
                mount, node, _ = self._resolve(current)
                if node is not None:
                    key = (mount, node.inode.inum)
                    if key in seen:  # a crafted image may link a directory into itself
                        continue
                    seen.add(key)
            try:
                children = self.listdir(current, follow=False)
            except ExploreError:  # only a crafted image (two entries of one name) gets here
                continue
            for entry in children:
                yield entry
            stack.extend(e.path for e in reversed(children) if e.is_dir)

    def close(self) -> None:
        with self._lock:
            self._listings.clear()

    def __enter__(self) -> "Explorer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LockedReader(io.RawIOBase):
    """A file stream whose every read holds the explorer's lock: one image handle, many threads."""

    def __init__(self, inner: BinaryIO, size: int, lock: threading.RLock):
        self._inner, self.size, self._lock, self._pos = inner, size, lock, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf) -> int:  # type: ignore[override]
        want = min(len(buf), max(0, self.size - self._pos))
        if want <= 0:
            return 0
        with self._lock:
            self._inner.seek(self._pos)
            data = self._inner.read(want)
        buf[:len(data)] = data
        self._pos += len(data)
        return len(data)


def open_volume(fileobj: BinaryIO) -> Explorer:
    """Open an image (QCOW2 or raw) for exploring; a typed ExploreError says why it cannot be."""
    disk, fmt, size = open_disk(fileobj)
    mounts: dict[str, Filesystem] = {}
    infos: list[VolumeInfo] = []
    problems: list[ExploreError] = []
    for vol in find_volumes(disk, size):
        try:
            fs = open_filesystem(vol.stream)
        except ExploreError as exc:
            problems.append(exc)
            infos.append(VolumeInfo(vol.name, vol.description, vol.size, None, str(exc)))
            continue
        mounts[vol.name] = fs
        infos.append(VolumeInfo(vol.name, vol.description, vol.size, fs.kind))
    if not mounts:
        raise _most_telling(problems, len(infos))
    return Explorer(mounts, infos, fmt, size)


def _most_telling(problems: list[ExploreError], volumes: int) -> ExploreError:
    """Of the reasons no volume opened, the one a person needs first (encryption first)."""
    for kind in (EncryptedVolumeError, UnsupportedFilesystemError, NoFilesystemError):
        for exc in problems:
            if isinstance(exc, kind):
                if volumes > 1:
                    return type(exc)(f"none of the {volumes} volumes could be opened; {exc}")
                return exc
    return problems[0] if problems else NoFilesystemError("the image holds no volume")
