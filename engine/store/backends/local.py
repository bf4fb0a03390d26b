"""The local backend: a store in a directory of a local (or mounted) file system.

A file is written to ``<dir>/.tmp-<name>-<8 hex>-<pid>@<host>``, then renamed. A writer killed
mid-write leaves that temp file; its name says whose it was, so the next writer can tell that
the process is gone and remove it (one of another host: once it is older than TEMP_GRACE).
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from engine.errors import OperationError
from engine.store.backends.base import (Buffer, NotFound, PageBuffer, Stat, TempFile,
                                        process_gone, round_up)

TEMP_PREFIX = ".tmp-"
# A temp file untouched for this long is a dead writer's, whoever wrote it: no put takes so long.
TEMP_GRACE = 3600.0
_TEMP_WRITER = re.compile(r"-[0-9a-f]{8}-(?P<pid>[0-9]+)@(?P<host>[^/]*)$")


class LocalBackend:
    """A directory on a local file system."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        self.url = str(self.root)
        self._made: set[Path] = set()

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"bad store file name {name!r}")
        return self.root / name

    def exists(self) -> bool:
        return self.root.is_dir()

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, name: str, data: Buffer | Sequence[Buffer], *, exclusive: bool = False) -> None:
        path = self._path(name)
        parent = path.parent
        if parent not in self._made:
            parent.mkdir(parents=True, exist_ok=True)
            self._made.add(parent)
        tmp = parent / (f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(4)}-{os.getpid()}@"
                        f"{_host_for_name()}")
        try:
            if not (isinstance(data, PageBuffer) and _write_direct(tmp, data)):
                if isinstance(data, PageBuffer):
                    buffers: list[Buffer] = [data.view()]
                elif isinstance(data, (bytes, bytearray, memoryview)):
                    buffers = [data]
                else:
                    buffers = list(data)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    _write_all(fd, buffers)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if exclusive:
                os.link(tmp, path)  # fails with FileExistsError if someone got there first
                os.unlink(tmp)
            else:
                os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _fsync_dir(parent)

    def replace(self, name: str, data: Buffer | Sequence[Buffer]) -> None:
        """Rewrite an existing file; NotFound if it was removed (a lock judged stale)."""
        if self.stat(name) is None:
            raise NotFound(f"store file {name} is missing")
        self.put(name, data)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self._path(name), "rb", buffering=0) as f:
                if offset:
                    f.seek(offset)
                return f.read() if length is None else _read_exact(f, length)
        except FileNotFoundError:
            raise NotFound(f"store file {name} is missing") from None

    def read_into(self, name: str, offset: int, buf: memoryview) -> None:
        """Fill ``buf`` from ``offset`` of the file: ``get`` without a new buffer per call,
        for restores that read gigabytes (fresh memory is slow to touch on these VMs)."""
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound(f"store file {name} is missing") from None
        try:
            done = 0
            while done < len(buf):
                n = os.preadv(fd, [buf[done:]], offset + done)
                if n == 0:
                    raise OperationError("store file is shorter than its index says "
                                         "(truncated or damaged)")
                done += n
        finally:
            os.close(fd)

    def list(self, prefix: str) -> Iterator[Stat]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for fname in files:
                if fname.startswith(TEMP_PREFIX):
                    continue
                full = os.path.join(dirpath, fname)
                try:
                    size = os.stat(full).st_size
                except FileNotFoundError:
                    continue
                yield Stat(os.path.relpath(full, self.root).replace(os.sep, "/"), size)

    def stat(self, name: str) -> Stat | None:
        try:
            return Stat(name, self._path(name).stat().st_size)
        except FileNotFoundError:
            return None

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            pass

    def temp_files(self) -> list[TempFile]:
        found, now = [], time.time()
        for dirpath, _dirs, files in os.walk(self.root):
            for fname in files:
                if not fname.startswith(TEMP_PREFIX):
                    continue
                full = os.path.join(dirpath, fname)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue  # its writer just finished
                age = max(0.0, now - st.st_mtime)
                found.append(TempFile(os.path.relpath(full, self.root).replace(os.sep, "/"),
                                      st.st_size, age, age > TEMP_GRACE or _writer_gone(fname)))
        return found

    def remove_dead_temp_files(self) -> list[TempFile]:
        removed = []
        for temp in self.temp_files():
            if temp.writer_gone:
                try:
                    os.unlink(self.root / temp.name)
                except FileNotFoundError:
                    pass
                removed.append(temp)
        return removed


def _host_for_name() -> str:
    """This host's name as it can appear in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:64]


def _writer_gone(fname: str) -> bool:
    """Whether the writer named in a temp file's name is known to have stopped."""
    m = _TEMP_WRITER.search(fname)
    if m is None or m["host"] != _host_for_name():
        return False  # an older name, or another host's: only its age tells
    return process_gone(socket.gethostname(), int(m["pid"]))


def _write_direct(tmp: Path, data: PageBuffer) -> bool:
    """Write ``data`` to the new file ``tmp`` with O_DIRECT: whole pages (the padding of the
    last one comes from the buffer's spare room), then truncated to the real size. False when
    the file system refuses O_DIRECT (tmpfs, some FUSE): the caller writes it normally."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag or data.size == 0:
        return False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | flag, 0o600)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    try:
        padded = round_up(data.size)
        with memoryview(data.mem) as mem:
            pos = 0
            while pos < padded:
                pos += os.write(fd, mem[pos:padded])
        os.ftruncate(fd, data.size)
        os.fsync(fd)
        return True
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False  # the caller rewrites the file from the start (O_TRUNC)
    finally:
        os.close(fd)


def _write_all(fd: int, buffers: list[Buffer]) -> None:
    views = [memoryview(b).cast("B") for b in buffers if len(b)]
    while views:
        batch = views[:512]
        n = os.writev(fd, batch)
        # drop what was written, keep the rest (short writes are rare but legal)
        while n and views:
            first = views[0]
            if n >= len(first):
                n -= len(first)
                views.pop(0)
            else:
                views[0] = first[n:]
                n = 0


def _read_exact(f, length: int) -> bytes:
    data = f.read(length)
    if data is None or len(data) != length:
        raise OperationError("store file is shorter than its index says (truncated or damaged)")
    return data


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
