"""What a backend is: the interface every store location implements, and the buffers it takes.

Names are relative, ``/``-separated paths such as ``config`` or ``packs/3f/3f9a…``. The store
never updates a file in place: every file is written once, whole, and later maybe deleted.
"""
from __future__ import annotations

import errno
import mmap
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from engine.errors import OperationError

PAGE = 4096  # O_DIRECT alignment that suits 512-byte and 4 KiB logical blocks alike


class PageBuffer:
    """Reusable page-aligned memory (an anonymous mmap) holding ``size`` bytes of a file to
    write. LocalBackend writes it with O_DIRECT: on these VMs filling fresh page-cache pages
    costs ~1–3 CPU-s per GB of kernel time, a direct write almost none, and a backup's packs
    are not read again soon. Grows on demand (a copy); never shrinks."""

    def __init__(self, capacity: int):
        self.mem = mmap.mmap(-1, round_up(max(capacity, PAGE)))
        self.size = 0

    def append(self, data: "Buffer") -> int:
        """Copy ``data`` to the end; returns its offset."""
        start, end = self.size, self.size + len(data)
        self._room(end)
        self.mem[start:end] = data
        self.size = end
        return start

    def extend(self, n: int) -> memoryview:
        """Grow by ``n`` bytes and return them to be written in place (release the view before
        the next call: a buffer that must grow cannot move while a view is out)."""
        start, end = self.size, self.size + n
        self._room(end)
        self.size = end
        return memoryview(self.mem)[start:end]

    def _room(self, end: int) -> None:
        if end + PAGE > len(self.mem):  # room for the padding of the last direct write too
            bigger = mmap.mmap(-1, round_up(2 * (end + PAGE)))
            bigger[:self.size] = self.mem[:self.size]
            self.mem.close()
            self.mem = bigger

    def view(self) -> memoryview:
        return memoryview(self.mem)[:self.size]

    def close(self) -> None:
        """Unmap now (mmap's close drops the GIL for the munmap) rather than whenever the
        last reference goes."""
        self.mem.close()


Buffer = bytes | bytearray | memoryview | PageBuffer


def round_up(n: int) -> int:
    """``n`` rounded up to whole pages."""
    return (n + PAGE - 1) // PAGE * PAGE


class NotFound(OperationError):
    """The named file does not exist in the store."""


@dataclass
class Stat:
    name: str
    size: int


@dataclass
class TempFile:
    """A file a writer had not finished (a local ``.tmp-*``): never part of the store."""

    name: str           # its path in the store, like other names
    size: int
    age: float          # seconds since it was last written
    writer_gone: bool   # its writer is known to have stopped: safe to remove


class Backend(Protocol):
    """Storage for store files.

    Atomicity: ``put`` is all-or-nothing. A reader (another process, or a crash-restarted one)
    sees either no file under ``name`` or the complete content; never a partial one. On a local
    disk this is temp file + fsync + rename (+ fsync of the directory); on S3 a single PUT.
    ``put`` with ``exclusive=True`` fails with ``FileExistsError`` if the name exists.
    """

    url: str

    def put(self, name: str, data: Buffer | Sequence[Buffer], *, exclusive: bool = False) -> None:
        """Write the whole file atomically (``data`` may be a list of buffers, written in order)."""

    def replace(self, name: str, data: Buffer | Sequence[Buffer]) -> None:
        """Rewrite a file this process wrote, atomically as ``put``; NotFound if it was
        removed since: it is never re-created (a lock another process judged stale)."""

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read ``length`` bytes from ``offset`` (to the end when ``length`` is None).
        Raises NotFound if the file does not exist."""

    def list(self, prefix: str) -> Iterator[Stat]:
        """Every file whose name starts with ``prefix`` (a directory such as ``packs/``)."""

    def stat(self, name: str) -> Stat | None:
        """Size of the file, or None if it does not exist."""

    def delete(self, name: str) -> None:
        """Remove the file; no error if it is already gone."""

    def exists(self) -> bool:
        """Whether the store location itself exists."""

    def create(self) -> None:
        """Create the store location (a directory; nothing to do on S3)."""

    def temp_files(self) -> list[TempFile]:
        """Unfinished files of writers, running or gone (none on S3: a PUT leaves none)."""

    def remove_dead_temp_files(self) -> list[TempFile]:
        """Remove the unfinished files whose writer is gone; returns what was removed."""


def process_gone(host: str, pid: int) -> bool:
    """Whether process ``pid`` of ``host`` is known to have ended: only a process of this host
    can be known to have (one of another host, or of a pid we may not signal, may run on)."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
