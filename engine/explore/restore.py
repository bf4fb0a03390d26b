"""Restore files out of an image into a local folder, never writing outside it.

Safety rests on directory file descriptors, not on path strings: every file, directory and
link is created relative to the fd of its parent with O_NOFOLLOW / O_EXCL, so a name from the
image is only ever one path component, and a symlink the image holds (or that appears in the
folder meanwhile) is never traversed. Names that are not one plain component (empty, '.', '..',
containing '/' or NUL) are refused and reported. Symlinks are recreated verbatim as links.
Set-user/group-id bits are dropped: the restoring user owns what is written. Hard links are
restored as separate copies; devices, FIFOs and sockets are skipped and reported. The whole
filesystem ('/') lands at DIR/root.
"""
from __future__ import annotations

import contextlib
import os
import stat as statmod
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.explore.entries import Entry
from engine.explore.errors import ExploreError, UnsafeNameError
from engine.explore.explorer import Explorer

COPY_BLOCK = 1 << 20
KEPT_MODE_BITS = 0o1777
O_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class RestoreCancelled(ExploreError):
    """The restore was cancelled; whole files written so far stay, a cut one is removed."""


@dataclass
class RestoreReport:
    target: str
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)   # "path: why", untrusted text


def check_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise UnsafeNameError(f"refusing unsafe name {name!r}")
    return name


def restore(explorer: Explorer, path: str, dest: str | os.PathLike,
            progress: Callable[[int, int], None] | None = None,
            cancel: threading.Event | None = None) -> RestoreReport:
    """Copy ``path`` (a file or a tree) to ``dest/<basename of path>``; ``dest`` is created."""
    top = explorer.stat(path)
    name = check_name("root" if top.path == "/" else top.name)
    os.makedirs(dest, exist_ok=True)
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.lstat(name, dir_fd=root_fd)
        except FileNotFoundError:
            pass
        else:
            raise ExploreError(f"{os.path.join(os.fspath(dest), name)} already exists; "
                               "choose another --to folder or move it away")
        total = top.size if not top.is_dir else sum(
            e.size for e in explorer.walk(top.path) if e.type == "file")
        job = _Restorer(explorer, RestoreReport(os.path.join(os.fspath(dest), name)),
                        total, progress, cancel)
        job.run(root_fd, name, top)
        return job.report
    finally:
        os.close(root_fd)


class _Restorer:
    def __init__(self, explorer: Explorer, report: RestoreReport, total: int,
                 progress: Callable[[int, int], None] | None, cancel: threading.Event | None):
        self.explorer, self.report, self.total = explorer, report, total
        self.progress, self.cancel = progress, cancel
        self.seen_dirs: set[tuple[str, int]] = set()

    def run(self, root_fd: int, name: str, top: Entry) -> None:
        # Explicit stack: a crafted image can nest deeper than Python's recursion limit.
        # Items: ("make", parent_fd, name, entry) or ("finish", fd, entry).
        stack: list[tuple] = [("make", root_fd, name, top)]
        try:
            while stack:
                if self.cancel is not None and self.cancel.is_set():
                    raise self._cancelled()
                item = stack.pop()
                if item[0] == "finish":
                    self._finish_dir(item[1], item[2])
                    continue
                _, parent_fd, child_name, entry = item
                stack.extend(self._make(parent_fd, child_name, entry))
        finally:
            for item in stack:  # only on error: close dir fds still pending
                if item[0] == "finish":
                    os.close(item[1])

    def _skip(self, entry: Entry, why: str) -> None:
        self.report.skipped.append(f"{entry.path}: {why}")

    def _make(self, parent_fd: int, name: str, entry: Entry) -> list[tuple]:
        try:
            check_name(name)
        except UnsafeNameError as exc:
            self._skip(entry, str(exc))
            return []
        try:
            if entry.type == "file":
                self._write_file(parent_fd, name, entry)
            elif entry.type == "symlink":
                self._write_symlink(parent_fd, name, entry)
            elif entry.type == "dir":
                return self._enter_dir(parent_fd, name, entry)
            else:
                self._skip(entry, f"special file ({statmod.filemode(entry.mode)}) not restored")
        except OSError as exc:
            self._skip(entry, exc.strerror or str(exc))
        except RestoreCancelled:
            raise
        except ExploreError as exc:
            self._skip(entry, str(exc))
        return []

    def _write_file(self, parent_fd: int, name: str, entry: Entry) -> None:
        fd = os.open(name, O_NEW_FILE, 0o600, dir_fd=parent_fd)
        complete = False
        try:
            with self.explorer.open(entry.path) as src:
                while block := src.read(COPY_BLOCK):
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd, view):]
                    self.report.bytes += len(block)
                    if self.progress:
                        self.progress(self.report.bytes, self.total)
                    if self.cancel is not None and self.cancel.is_set():
                        raise self._cancelled()
            os.fchmod(fd, entry.mode & KEPT_MODE_BITS)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            complete = True
        finally:
            os.close(fd)
            if not complete:  # with its mode and time, a cut file would pass for the whole one
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=parent_fd)
        self.report.files += 1

    def _cancelled(self) -> "RestoreCancelled":
        return RestoreCancelled("restore cancelled; what was written so far is in "
                                f"{self.report.target}")

    def _write_symlink(self, parent_fd: int, name: str, entry: Entry) -> None:
        target = entry.link_target or ""
        if not target or "\x00" in target:
            self._skip(entry, "symlink with an empty or NUL target")
            return
        os.symlink(target, name, dir_fd=parent_fd)
        os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=parent_fd,
                 follow_symlinks=False)
        self.report.symlinks += 1

    def _enter_dir(self, parent_fd: int, name: str, entry: Entry) -> list[tuple]:
        mount = entry.path.split("/")[1]  # paths are escaped: '/' only ever separates
        key = ("" if self.explorer.single else mount, entry.inode)
        if key in self.seen_dirs:
            self._skip(entry, "directory loop (the same directory appears twice)")
            return []
        self.seen_dirs.add(key)
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        fd = os.open(name, O_NOFOLLOW_DIR, dir_fd=parent_fd)
        self.report.dirs += 1
        try:
            children = self.explorer.listdir(entry.path, follow=False)
        except ExploreError as exc:
            self._skip(entry, str(exc))
            children = []
        # Children are made after this returns; the dir's own mode and times come last, so a
        # read-only directory can still be filled and its mtime is not bumped by the writes.
        work: list[tuple] = [("finish", fd, entry)]
        work.extend(("make", fd, child.name, child) for child in reversed(children))
        return work

    def _finish_dir(self, fd: int, entry: Entry) -> None:
        try:
            os.fchmod(fd, entry.mode & KEPT_MODE_BITS)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fd)
