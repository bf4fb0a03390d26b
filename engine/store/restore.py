"""Reading images back: verified blob fetches, full restores (file or stream), and random access.

Every blob is authenticated (AES-GCM with its type and id as associated data), every chunk is
re-hashed and compared with its id, and the whole image's BLAKE3 digest is compared with the
manifest before an output file gets its final name.
"""
from __future__ import annotations

import io
import os
import secrets
import stat
import threading
import time
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.errors import OperationError, UsageError
from engine.store.backend import Backend, NotFound
from engine.store.backup import Cancelled
from engine.store.crypto import FLAG_RAW, FLAG_ZSTD, NONCE, IntegrityError, Keys, Sealer
from engine.store.index import IndexCache, Location
from engine.store.pack import BLOB_DATA, BLOB_TREE, blob_ad, pack_name
from engine.store.snapshot import ZERO_ID, Manifest, TreeRef, decode_tree

RUN_GAP = 256 * 1024       # read neighbouring blobs of a pack in one request across small gaps
RUN_MAX = 8 * 1024 * 1024  # but never more than this in one request
THREADS = 4
SEGMENT = 32 * 1024 * 1024  # stream restores assemble the image in segments of this size


class BlobReader:
    """Fetches, authenticates, decompresses and verifies blobs."""

    def __init__(self, backend: Backend, keys: Keys, cache: IndexCache):
        self.backend, self.keys, self.cache = backend, keys, cache
        self.aead = AESGCM(keys.data)
        self.sealer = Sealer(keys.data)
        self._local = threading.local()
        self.fetched = 0

    def locate(self, blob_id: bytes, blob_type: int) -> Location:
        loc = self.cache.lookup(blob_id, blob_type)
        if loc is None:
            kind = "chunk" if blob_type == BLOB_DATA else "chunk list"
            raise IntegrityError(f"{kind} {blob_id.hex()[:16]} is missing from the store")
        return loc

    def decode(self, sealed: bytes | memoryview, loc: Location, blob_id: bytes,
               blob_type: int) -> bytes:
        sealed = memoryview(sealed)
        try:
            plain = self.aead.decrypt(sealed[:NONCE], sealed[NONCE:], blob_ad(blob_type, blob_id))
        except InvalidTag:
            raise IntegrityError(f"blob {blob_id.hex()[:16]} in pack {loc.pack} is damaged "
                                 "(authentication failed)") from None
        if loc.flags == FLAG_ZSTD:
            dctx = getattr(self._local, "dctx", None)
            if dctx is None:
                dctx = self._local.dctx = zstandard.ZstdDecompressor()
            try:
                plain = dctx.decompress(plain, max_output_size=loc.raw_len)
            except zstandard.ZstdError:
                raise IntegrityError(f"blob {blob_id.hex()[:16]} does not decompress") from None
        elif loc.flags != FLAG_RAW:
            raise IntegrityError(f"blob {blob_id.hex()[:16]} has an unknown compression flag")
        if len(plain) != loc.raw_len or \
                blake3.blake3(plain, key=self.keys.chunk_id).digest() != blob_id:
            raise IntegrityError(f"blob {blob_id.hex()[:16]} does not match its id")
        return plain

    def read_blob(self, blob_id: bytes, blob_type: int) -> bytes:
        loc = self.locate(blob_id, blob_type)
        try:
            sealed = self.backend.get(pack_name(loc.pack), loc.offset, loc.stored_len)
        except NotFound:
            raise IntegrityError(f"pack {loc.pack} is missing from the store") from None
        self.fetched += loc.stored_len
        return self.decode(sealed, loc, blob_id, blob_type)

    def read_tree(self, ref: TreeRef) -> tuple[list[bytes], list[int]]:
        ids, lengths = decode_tree(self.read_blob(ref.id, BLOB_TREE))
        if len(ids) != ref.chunks or sum(lengths) != ref.bytes:
            raise IntegrityError(f"chunk list {ref.id.hex()[:16]} does not match its manifest")
        return ids, lengths


@dataclass
class _Run:
    """Blobs of one pack read with one request: (location, id, image offsets)."""

    pack: str
    start: int
    end: int
    blobs: list[tuple[Location, bytes, list[int]]] = field(default_factory=list)


def _plan(reader: BlobReader, ids: list[bytes], lengths: list[int],
          base: int) -> list[_Run]:
    wanted: dict[bytes, list[int]] = {}
    offset = base
    for cid, length in zip(ids, lengths):
        if cid != ZERO_ID:
            wanted.setdefault(cid, []).append(offset)
        offset += length
    where = reader.cache.lookup_many(wanted, BLOB_DATA)
    by_pack: dict[str, list[tuple[Location, bytes, list[int]]]] = {}
    for cid, offsets in wanted.items():
        loc = where.get(cid) or reader.locate(cid, BLOB_DATA)  # locate raises "missing"
        by_pack.setdefault(loc.pack, []).append((loc, cid, offsets))
    runs: list[_Run] = []
    for pack, blobs in by_pack.items():
        blobs.sort(key=lambda b: b[0].offset)
        run: _Run | None = None
        for loc, cid, offsets in blobs:
            end = loc.offset + loc.stored_len
            if run is None or loc.offset - run.end > RUN_GAP or end - run.start > RUN_MAX:
                run = _Run(pack, loc.offset, end)
                runs.append(run)
            run.end = max(run.end, end)
            run.blobs.append((loc, cid, offsets))
    return runs


def _submit_runs(reader: BlobReader, runs: list[_Run], pool: ThreadPoolExecutor,
                 view: memoryview, base: int,
                 cancel: threading.Event | None) -> list[Future]:
    """Fetch the runs in the pool, each blob verified and copied to its places in ``view``
    (which holds the image from offset ``base``)."""
    def work(run: _Run) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("restore cancelled")
        try:
            data = memoryview(reader.backend.get(pack_name(run.pack), run.start,
                                                 run.end - run.start))
        except NotFound:
            raise IntegrityError(f"pack {run.pack} is missing from the store") from None
        except OperationError:
            raise IntegrityError(f"pack {run.pack} is truncated") from None
        reader.fetched += len(data)
        for loc, cid, offsets in run.blobs:
            rel = loc.offset - run.start
            plain = reader.decode(data[rel:rel + loc.stored_len], loc, cid, BLOB_DATA)
            for off in offsets:
                view[off - base:off - base + len(plain)] = plain

    return [pool.submit(work, run) for run in runs]


@dataclass
class _Segment:
    """A stretch of the image (whole chunks) assembled in memory before it is written."""

    base: int
    ids: list[bytes]
    lengths: list[int]
    buf: bytearray
    futures: list[Future]

    @property
    def size(self) -> int:
        return sum(self.lengths)


def _segments(reader: BlobReader, manifest: Manifest) -> Iterator[tuple[int, list[bytes], list[int]]]:
    for ref in manifest.trees:
        ids, lengths = reader.read_tree(ref)
        i, base = 0, ref.offset
        while i < len(ids):
            j, size = i, 0
            while j < len(ids) and size < SEGMENT:
                size += lengths[j]
                j += 1
            yield base, ids[i:j], lengths[i:j]
            base += size
            i = j


def _restore(reader: BlobReader, manifest: Manifest,
             emit: Callable[[_Segment, memoryview], None],
             progress: Callable[[int, int], None] | None,
             cancel: threading.Event | None) -> None:
    """Assemble the image segment by segment (the next one is fetched in parallel while the
    current one is hashed and handed to ``emit`` in order), then check the whole digest."""
    size, done = manifest.info.bytes, 0
    hasher = blake3.blake3()
    free: list[bytearray] = []
    inflight: deque[_Segment] = deque()

    def finish(seg: _Segment) -> None:
        nonlocal done
        for fut in seg.futures:
            fut.result()
        view = memoryview(seg.buf)[:seg.size]
        hasher.update(view)
        emit(seg, view)
        del view
        free.append(seg.buf)
        done += seg.size
        if progress is not None:
            progress(done, size)

    with ThreadPoolExecutor(THREADS, thread_name_prefix="strongroom-restore") as pool:
        try:
            for base, ids, lengths in _segments(reader, manifest):
                need = sum(lengths)
                buf = free.pop() if free else bytearray(SEGMENT + 4 * 1024 * 1024)
                if len(buf) < need:
                    buf = bytearray(need)
                view = memoryview(buf)
                _zero_fill(view, ids, lengths)
                runs = _plan(reader, ids, lengths, base)
                inflight.append(_Segment(base, ids, lengths, buf,
                                         _submit_runs(reader, runs, pool, view, base, cancel)))
                del view
                if len(inflight) > 2:  # two segments fetched ahead of the one written
                    finish(inflight.popleft())
            while inflight:
                finish(inflight.popleft())
        except BaseException:
            for seg in inflight:
                for fut in seg.futures:
                    fut.cancel()
            raise
    if "blake3:" + hasher.hexdigest() != manifest.info.digest:
        raise IntegrityError(f"the restored image of snapshot {manifest.info.id[:12]} does not "
                             "match its digest")


def _execute(reader: BlobReader, runs: list[_Run], pool: ThreadPoolExecutor,
             sink: Callable[[bytes, list[int]], None], cancel: threading.Event | None,
             progress: Callable[[int], None]) -> None:
    def work(run: _Run) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("restore cancelled")
        try:
            data = memoryview(reader.backend.get(pack_name(run.pack), run.start,
                                                 run.end - run.start))
        except NotFound:
            raise IntegrityError(f"pack {run.pack} is missing from the store") from None
        except OperationError:
            raise IntegrityError(f"pack {run.pack} is truncated") from None
        reader.fetched += len(data)
        for loc, cid, offsets in run.blobs:
            rel = loc.offset - run.start
            plain = reader.decode(data[rel:rel + loc.stored_len], loc, cid, BLOB_DATA)
            sink(plain, offsets)
            progress(len(plain) * len(offsets))

    for fut in [pool.submit(work, run) for run in runs]:
        fut.result()


def iter_trees(reader: BlobReader, manifest: Manifest) -> Iterator[tuple[TreeRef, list[bytes], list[int]]]:
    for ref in manifest.trees:
        ids, lengths = reader.read_tree(ref)
        yield ref, ids, lengths


def restore_to_path(reader: BlobReader, manifest: Manifest, out: Path,
                    progress: Callable[[int, int], None] | None,
                    cancel: threading.Event | None) -> None:
    """Parallel positioned writes into ``<out>.strongroom-tmp-XXXX`` (all-zero chunks stay
    holes); the file is read back and its digest checked before it gets its final name."""
    size, done = manifest.info.bytes, [0]
    lock = threading.Lock()

    def tick(n: int) -> None:
        with lock:
            done[0] += n
            value = done[0]
        if progress is not None:
            progress(value, size)

    if out.is_dir():
        raise UsageError(f"{out} is a directory: give a file name for the restored image")
    if not out.parent.is_dir():
        raise UsageError(f"folder {out.parent} does not exist: create it first")
    tmp = out.parent / f"{out.name}.strongroom-tmp-{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot write to folder {out.parent}: {exc.strerror}") from None
    try:
        os.ftruncate(fd, size)  # all-zero chunks stay holes

        def sink(data: bytes, offsets: list[int]) -> None:
            for off in offsets:
                _pwrite_all(fd, data, off)

        with ThreadPoolExecutor(THREADS, thread_name_prefix="strongroom-restore") as pool:
            for ref, ids, lengths in iter_trees(reader, manifest):
                _execute(reader, _plan(reader, ids, lengths, ref.offset), pool, sink, cancel,
                         tick)
                zero = sum(n for cid, n in zip(ids, lengths) if cid == ZERO_ID)
                if zero:
                    tick(zero)
        # No fsync: the read-back below checks what the kernel holds, and forcing 1 GB to disk
        # would double the restore time; callers that need durability sync the result.
        hasher = _digest_fd(fd)
        if "blake3:" + hasher.hexdigest() != manifest.info.digest:
            raise IntegrityError(f"the restored image of snapshot {manifest.info.id[:12]} does "
                                 "not match its digest")
        os.close(fd)
        fd = -1
        os.replace(tmp, out)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def restore_to_stream(reader: BlobReader, manifest: Manifest, out: BinaryIO,
                      progress: Callable[[int, int], None] | None,
                      cancel: threading.Event | None) -> None:
    """Sequential writes (a pipe, stdout, a multipart upload); verified all the same, but what
    was written before a failure cannot be taken back: the caller must report the failure."""
    _restore(reader, manifest, lambda seg, view: _write_all(out, view), progress, cancel)
    flush = getattr(out, "flush", None)
    if flush is not None:
        flush()


def _digest_fd(fd: int) -> "blake3.blake3":
    """BLAKE3 of what actually landed in the output file, read back through one reused buffer
    (an mmap would count the whole image in our RSS)."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    buf = bytearray(8 * 1024 * 1024)
    view, pos = memoryview(buf), 0
    while True:
        n = os.preadv(fd, [view], pos)
        if not n:
            return hasher
        hasher.update(view[:n])
        pos += n


_ZEROS = memoryview(bytes(4 * 1024 * 1024))  # the largest chunk any store may have


def _zero_fill(view: memoryview, ids: list[bytes], lengths: list[int]) -> None:
    pos = 0
    for cid, length in zip(ids, lengths):
        if cid == ZERO_ID:
            view[pos:pos + length] = _ZEROS[:length]
        pos += length


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    data = memoryview(data)
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


def _write_all(out: BinaryIO, data: memoryview) -> None:
    while data:
        n = out.write(data)
        if n is None or n == len(data):
            return
        data = data[n:]


def is_stream_target(out: object) -> bool:
    if not isinstance(out, (str, os.PathLike)):
        return True
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


class ImageReader(io.RawIOBase):
    """A read-only, seekable view of a stored image; fetches only the chunks a read needs."""

    def __init__(self, reader: BlobReader, manifest: Manifest, cache_bytes: int = 32 << 20):
        super().__init__()
        self._reader, self.manifest = reader, manifest
        self.size = manifest.info.bytes
        self.bytes_fetched = 0
        self._pos = 0
        self._tree_starts = [t.offset for t in manifest.trees]
        self._trees: OrderedDict[int, tuple[list[bytes], list[int], list[int]]] = OrderedDict()
        self._chunks: OrderedDict[bytes, bytes] = OrderedDict()
        self._cached, self._cache_limit = 0, cache_bytes
        self._lock = threading.Lock()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError("negative seek position")
        self._pos = base + offset
        return self._pos

    def _tree(self, t: int) -> tuple[list[bytes], list[int], list[int]]:
        hit = self._trees.get(t)
        if hit is not None:
            self._trees.move_to_end(t)
            return hit
        ref = self.manifest.trees[t]
        loc = self._reader.locate(ref.id, BLOB_TREE)
        ids, lengths = self._reader.read_tree(ref)
        self.bytes_fetched += loc.stored_len
        starts, pos = [], ref.offset
        for n in lengths:
            starts.append(pos)
            pos += n
        self._trees[t] = (ids, lengths, starts)
        if len(self._trees) > 4:
            self._trees.popitem(last=False)
        return self._trees[t]

    def _chunk(self, cid: bytes, length: int) -> bytes:
        if cid == ZERO_ID:
            return bytes(length)
        hit = self._chunks.get(cid)
        if hit is not None:
            self._chunks.move_to_end(cid)
            return hit
        loc = self._reader.locate(cid, BLOB_DATA)
        data = self._reader.read_blob(cid, BLOB_DATA)
        self.bytes_fetched += loc.stored_len
        self._chunks[cid] = data
        self._cached += len(data)
        while self._cached > self._cache_limit and len(self._chunks) > 1:
            _, old = self._chunks.popitem(last=False)
            self._cached -= len(old)
        return data

    def readinto(self, b) -> int:  # type: ignore[override]
        out = memoryview(b).cast("B")
        with self._lock:
            written = 0
            while written < len(out) and self._pos < self.size:
                t = bisect_right(self._tree_starts, self._pos) - 1
                ids, lengths, starts = self._tree(t)
                i = bisect_right(starts, self._pos) - 1
                data = self._chunk(ids[i], lengths[i])
                rel = self._pos - starts[i]
                n = min(len(out) - written, lengths[i] - rel)
                out[written:written + n] = memoryview(data)[rel:rel + n] if ids[i] != ZERO_ID \
                    else bytes(n)
                written += n
                self._pos += n
            return written
