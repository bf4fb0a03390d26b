"""The explorer: a read-only, thread-safe file view over a disk image.

Addressing (documented choice): when exactly one volume of the image holds a readable
filesystem, paths start at that filesystem's root (``/etc/hosts``), whatever partition it
lives on; cloud images with a small EFI partition next to the root filesystem work as
expected. When several volumes are readable, the root lists them as directories named
``p1``, ``p2`` … (partitions) or ``vg-lv`` (LVM logical volumes), and paths go through them
(``/p2/etc/hosts``).

Names: paths are written escaped (see ``names``): ``\\x2f`` is a '/' inside a name, ``<N>`` the
entry of a directory whose inode is N. ``Entry.path`` is always in that form, so any entry,
even one a crafted image names with '/' or shares a name with another, can be addressed; a
name shared by several entries is refused rather than guessed.
"""
from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from engine.explore.entries import Entry, VolumeInfo
from engine.explore.errors import (AmbiguousNameError, EncryptedVolumeError, ExploreError,
                                   NoFilesystemError, NotADirectoryInImageError,
                                   PathNotFoundError, UnsupportedFilesystemError)
from engine.explore.filesystems import Filesystem, FsNode, damage_as_error, open_filesystem
from engine.explore.image import open_disk
from engine.explore.names import (Component, InodeRef, escape_name, join_components,
                                  split_path)
from engine.explore.volumes import find_volumes

LISTING_CACHE = 512
MAX_LINKS = 40
ROOT_MODE = 0o040555


class _Parent:
    """A '..' step of a symlink target (a typed '..' is resolved lexically before walking)."""


PARENT = _Parent()


@dataclass
class Listing:
    """One directory's entries, indexed: lookups by name or inode cost no scan, and a name two
    entries share is known (their paths then name them by inode: ``<N>``)."""

    entries: list[tuple[str, FsNode]]
    by_name: dict[str, list[FsNode]] = field(default_factory=dict)
    by_inode: dict[int, tuple[str, FsNode]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, node in self.entries:
            self.by_name.setdefault(name, []).append(node)
            self.by_inode.setdefault(int(node.inode.inum), (name, node))

    def component(self, name: str, node: FsNode) -> str:
        """How a path names this entry: its escaped name, or ``<inode>`` if the name is shared
        or empty (an empty component would name the directory itself)."""
        if not name or len(self.by_name.get(name, ())) > 1:
            return f"<{int(node.inode.inum)}>"
        return escape_name(name)


@dataclass
class _Found:
    """Where a path led: the volume, the node (None: the virtual root of several volumes), the
    escaped path components of the canonical path and the real name of the last step."""

    mount: str | None
    node: FsNode | None
    components: list[str]
    name: str


def _shown(part: Component) -> str:
    return f"<{int(part)}>" if isinstance(part, InodeRef) else escape_name(part)


def _target_steps(target: str) -> list[Component | _Parent]:
    """A symlink target's components: raw names (no escapes: a link's text is literal)."""
    return [PARENT if part == ".." else part for part in target.split("/")
            if part not in ("", ".")]


def _lookup(listing: Listing, step: Component, typed: str) -> tuple[str, FsNode]:
    if isinstance(step, InodeRef):
        found = listing.by_inode.get(int(step))
        if found is None:
            raise PathNotFoundError(f"{typed}: no entry with inode {int(step)} in that directory")
        return found
    nodes = listing.by_name.get(step)
    if not nodes:
        raise PathNotFoundError(f"{typed}: no such file or directory in the backup")
    inodes = sorted({int(n.inode.inum) for n in nodes})
    if len(inodes) > 1:  # never guess which one was meant
        raise AmbiguousNameError(
            f"{typed}: {len(nodes)} entries share the name {escape_name(step)} (a damaged or "
            f"crafted filesystem); name one by inode: {', '.join(f'<{i}>' for i in inodes)}")
    return step, nodes[0]


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
        self._listings: OrderedDict[tuple[str, int], Listing] = OrderedDict()

    # -- lookups ---------------------------------------------------------------------------
    def _children(self, mount: str, node: FsNode, where: str) -> Listing:
        key = (mount, node.inode.inum)
        with self._lock:
            if key in self._listings:
                self._listings.move_to_end(key)
                return self._listings[key]
            with damage_as_error("directory", where):
                listing = Listing(node.children())
            self._listings[key] = listing
            if len(self._listings) > LISTING_CACHE:
                self._listings.popitem(last=False)
            return listing

    def _resolve(self, path: str, follow: bool = False) -> _Found:
        """Where ``path`` leads; node None is the virtual root of a multi-volume image.

        Symlinks met on the way are followed inside the image (modern root filesystems link
        /lib to usr/lib); the last component only when ``follow`` is set. An absolute target
        starts again at the root of the same filesystem. Reading is all this does: links
        never lead outside the image.
        """
        parts = split_path(path)
        typed = join_components([_shown(p) for p in parts])  # for messages: escaped, safe
        prefix: list[str] = []
        if self.single:
            mount, todo = next(iter(self.mounts)), parts
        elif not parts:
            return _Found(None, None, [], "/")
        else:
            first = parts[0]
            if isinstance(first, InodeRef) or first not in self.mounts:
                raise PathNotFoundError(f"{typed}: no such volume; the image holds "
                                        f"{', '.join(escape_name(m) for m in self.mounts)}")
            mount, todo, prefix = first, parts[1:], [escape_name(first)]
        root = self.mounts[mount].root
        stack: list[tuple[str, str, FsNode]] = []  # (path component, name, node) walked so far
        pending: list[Component | _Parent] = list(todo)
        links = 0
        while pending:
            step = pending.pop(0)
            if isinstance(step, _Parent):
                if stack:
                    stack.pop()
                continue
            here = stack[-1][2] if stack else root
            walked = join_components(prefix + [c for c, _, _ in stack])
            if here.kind != "dir":
                raise NotADirectoryInImageError(f"{walked} is not a directory")
            listing = self._children(mount, here, walked)
            name, child = _lookup(listing, step, typed)
            if child.kind == "symlink" and (pending or follow):
                links += 1
                if links > MAX_LINKS:
                    raise PathNotFoundError(f"{typed}: too many levels of symbolic links")
                target = child.link_target or ""
                if target.startswith("/"):
                    stack = []
                pending = _target_steps(target) + pending
                continue
            stack.append((listing.component(name, child), name, child))
        if stack:
            return _Found(mount, stack[-1][2], prefix + [c for c, _, _ in stack], stack[-1][1])
        return _Found(mount, root, prefix, mount if prefix else "/")

    def _entry(self, name: str, components: list[str], node: FsNode) -> Entry:
        return Entry(name=name, path=join_components(components), type=node.kind,
                     size=node.size, mode=node.mode, mtime_ns=node.mtime_ns,
                     link_target=node.link_target, inode=int(node.inode.inum))

    def _virtual_root(self) -> Entry:
        return Entry(name="/", path="/", type="dir", size=0, mode=ROOT_MODE, mtime_ns=0)

    # -- public API --------------------------------------------------------------------------
    def stat(self, path: str) -> Entry:
        with self._lock:
            found = self._resolve(path)
            if found.node is None:
                return self._virtual_root()
            return self._entry(found.name, found.components, found.node)

    def listdir(self, path: str = "/", follow: bool = True) -> list[Entry]:
        """Entries of a directory, sorted by name. As ``ls`` does, a file gives itself and a
        symlink to a directory lists the directory; with ``follow=False`` (walking a tree)
        anything but a directory is an error."""
        with self._lock:
            found = self._resolve(path, follow=follow)
            node = found.node
            if node is None:
                return [self._entry(name, [escape_name(name)], fs.root)
                        for name, fs in self.mounts.items()]
            if node.kind != "dir":
                if not follow:
                    raise NotADirectoryInImageError(
                        f"{join_components(found.components)} is not a directory")
                return [self.stat(path)]  # a file, or a link to one: itself, as ls shows it
            assert found.mount is not None
            listing = self._children(found.mount, node, join_components(found.components))
            entries = [self._entry(name, found.components + [listing.component(name, child)],
                                   child)
                       for name, child in listing.entries]
        return sorted(entries, key=lambda e: (e.name, e.inode))

    def open(self, path: str) -> BinaryIO:
        """A read-only stream over a regular file's bytes."""
        with self._lock:
            found = self._resolve(path, follow=True)
            node, where = found.node, join_components(found.components)
            if node is None or node.kind == "dir":
                raise NotADirectoryInImageError(f"{where} is a directory, not a file")
            if node.kind != "file":
                raise ExploreError(f"{where} is a {node.kind}, not a regular file")
            with damage_as_error("file", where):
                inner = node.open()
            return LockedReader(inner, node.size, self._lock, where)

    def read_file(self, path: str, limit: int | None = None) -> bytes:
        with self.open(path) as fh:
            return fh.read() if limit is None else fh.read(limit)

    def resolve(self, path: str) -> str:
        """The canonical (escaped) path of ``path`` inside the image, symlinks followed."""
        with self._lock:
            return join_components(self._resolve(path, follow=True).components)

    def walk(self, path: str = "/") -> Iterator[Entry]:
        """Every entry below ``path`` (itself followed if a link to a directory), parents
        before children; symlinks inside are listed, never followed."""
        with self._lock:
            found = self._resolve(path, follow=True)
        if found.node is not None and found.node.kind != "dir":
            return
        seen: set[tuple[str | None, int]] = set()
        stack = [join_components(found.components)]
        while stack:
            current = stack.pop()
            with self._lock:
                here = self._resolve(current)
                if here.node is not None:
                    key = (here.mount, here.node.inode.inum)
                    if key in seen:  # a crafted image may link a directory into itself
                        continue
                    seen.add(key)
            try:
                children = self.listdir(current, follow=False)
            except ExploreError:  # a damaged directory: what can be read is still walked
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

    def __init__(self, inner: BinaryIO, size: int, lock: threading.RLock, where: str = ""):
        self._inner, self.size, self._lock, self._pos = inner, size, lock, 0
        self._where = where

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
        with self._lock, damage_as_error("file", self._where):
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
