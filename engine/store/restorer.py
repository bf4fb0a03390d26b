"""The restorer: full restores of an image (file or stream) and random access to it, through
the repository's BlobReader.

Every blob is authenticated (AES-GCM with its type and id as associated data) and every chunk
re-hashed and compared with its id; the manifest's digest is checked before an output file gets
its final name. That digest is over the chunk list (manifest version 2): a file target is then
written in pack order, each blob at its offsets as soon as it is decoded (engine/store/
prefetch.py), with no second pass over the image. Version-1 manifests hold the BLAKE3 of the
whole image: those, stream targets, and restores asked for the image's SHA-256 assemble the
image in order, segment by segment, and hash it.
"""
from __future__ import annotations

import errno
import hashlib
import io
import mmap
import os
import secrets
import stat
import threading
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import blake3

from engine.errors import OperationError, UsageError
from engine.store.backends.base import NotFound
from engine.store.crypto import IntegrityError
from engine.store import prefetch
from engine.store.pack import BLOB_DATA, BLOB_TREE
from engine.store.repository import BlobReader, Cancelled
from engine.store.snapshot import (DIGEST_CHUNKS, DIGEST_IMAGE, ZERO_ID, Manifest, TreeRef,
                                   chunk_list_hasher, decode_tree)
from engine.store.switching import short_switches

RUN_MAX = 8 * 1024 * 1024  # but never more than this in one request (S3: fewer, larger GETs)
RUN_MAX_LOCAL = 1024 * 1024  # local files: smaller runs spread a segment over all threads
THREADS = 4
SEGMENT = 16 * 1024 * 1024  # restores assemble the image in segments of this size
PAGE = 4096  # O_DIRECT alignment (suits 512-byte and 4 KiB logical blocks)


def _plan(reader: BlobReader, ids: list[bytes], lengths: list[int],
          base: int) -> list[prefetch.Run]:
    """The in-order path's runs: the read-ahead's plan, with this path's run sizes."""
    return prefetch.plan(reader, ids, lengths, base,
                         run_max=RUN_MAX_LOCAL if reader.local else RUN_MAX)


def _submit_runs(reader: BlobReader, runs: list[prefetch.Run], pool: ThreadPoolExecutor,
                 view: memoryview, base: int,
                 cancel: threading.Event | None) -> list[Future]:
    """Fetch the runs in the pool, each blob verified and copied to its places in ``view``
    (which holds the image from offset ``base``)."""
    def work(run: prefetch.Run) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("restore cancelled")
        try:
            data = reader.fetch(run.pack, run.start, run.end - run.start)
        except NotFound:  # moved by a prune since the plan: one blob at a time, found anew
            for _loc, cid, offsets in run.blobs:
                plain = reader.read_blob(cid, BLOB_DATA)
                for off in offsets:
                    view[off - base:off - base + len(plain)] = plain
            return
        except OperationError:
            raise IntegrityError(f"pack {run.pack} is truncated") from None
        for loc, cid, offsets in run.blobs:
            rel = loc.offset - run.start
            plain = reader.decode(data[rel:rel + loc.stored_len], loc, cid, BLOB_DATA)
            for off in offsets:
                view[off - base:off - base + len(plain)] = plain

    return [pool.submit(work, run) for run in runs]


@dataclass
class _Segment:
    """A stretch of the image (whole chunks) assembled in memory before it is written: the
    image bytes from ``base`` sit at ``buf[lead:]`` (``lead`` leaves room for the unwritten
    end of the previous segment's last page, so that file targets write whole pages)."""

    base: int
    ids: list[bytes]
    lengths: list[int]
    buf: mmap.mmap
    futures: list[Future]
    lead: int = 0

    @property
    def size(self) -> int:
        return sum(self.lengths)


def _trees(reader: BlobReader, manifest: Manifest,
           chunk_digest: "blake3.blake3") -> Iterator[tuple[int, list[bytes], list[int]]]:
    """(offset, ids, lengths) of each chunk list, in image order, each checked against the
    manifest and fed to ``chunk_digest``."""
    for ref in manifest.trees:
        raw = reader.read_blob(ref.id, BLOB_TREE)
        ids, lengths = decode_tree(raw)
        if len(ids) != ref.chunks or sum(lengths) != ref.bytes:
            raise IntegrityError(f"chunk list {ref.id.hex()[:16]} does not match its manifest")
        chunk_digest.update(raw)
        yield ref.offset, ids, lengths


def check_digest(manifest: Manifest, chunk_digest: "blake3.blake3",
                 image_digest: "blake3.blake3 | None") -> None:
    """Compare what was read with the manifest's digest (either kind, see snapshot.py)."""
    want = manifest.info.digest
    if want.startswith(DIGEST_CHUNKS):
        ok = DIGEST_CHUNKS + chunk_digest.hexdigest() == want
    elif want.startswith(DIGEST_IMAGE) and image_digest is not None:
        ok = DIGEST_IMAGE + image_digest.hexdigest() == want
    else:
        raise IntegrityError(f"snapshot {manifest.info.id[:12]} has a digest of unknown kind")
    if not ok:
        raise IntegrityError(f"the restored image of snapshot {manifest.info.id[:12]} does not "
                             "match its digest")


def _segments(reader: BlobReader, manifest: Manifest, chunk_digest: "blake3.blake3"
              ) -> Iterator[tuple[int, list[bytes], list[int]]]:
    for offset, ids, lengths in _trees(reader, manifest, chunk_digest):
        i, base = 0, offset
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
             cancel: threading.Event | None, page_aligned: bool = False,
             still_locked: Callable[[], None] | None = None,
             sha256: "hashlib._Hash | None" = None) -> None:
    """Assemble the image segment by segment (the next ones are fetched in parallel while one
    writer thread hashes the current one and hands it to ``emit``, in order), then check the
    whole digest. The main thread only plans and waits: hashing there made it the restore's
    bottleneck. Segment buffers are reused anonymous mmaps (page-aligned: fresh memory is slow
    on these VMs). ``still_locked`` raises when the store lock is lost: called per segment.
    ``sha256`` is fed the image in order too (on request: the image's SHA-256)."""
    size, done = manifest.info.bytes, 0
    chunk_digest = chunk_list_hasher()
    hasher = blake3.blake3() if manifest.info.digest.startswith(DIGEST_IMAGE) else None
    free: list[mmap.mmap] = []
    inflight: deque[_Segment] = deque()
    writer = ThreadPoolExecutor(1, thread_name_prefix="strongroom-write")
    writing: list[tuple[Future, _Segment]] = []  # at most one write in flight

    def hash_and_emit(seg: _Segment, view: memoryview) -> None:
        if hasher is not None:
            hasher.update(view)
        if sha256 is not None:
            sha256.update(view)
        emit(seg, view)

    def settle() -> None:
        while writing:
            fut, seg = writing.pop()
            fut.result()
            free.append(seg.buf)

    def finish(seg: _Segment) -> None:
        nonlocal done
        for fut in seg.futures:
            fut.result()
        if still_locked is not None:
            still_locked()
        with memoryview(seg.buf) as mem:
            view = mem[seg.lead:seg.lead + seg.size]
        settle()
        writing.append((writer.submit(hash_and_emit, seg, view), seg))
        del view
        done += seg.size
        if progress is not None:
            progress(done, size)

    try:
        with ThreadPoolExecutor(THREADS, thread_name_prefix="strongroom-restore") as pool:
            try:
                for base, ids, lengths in _segments(reader, manifest, chunk_digest):
                    need = sum(lengths)
                    lead = base % PAGE if page_aligned else 0
                    buf = free.pop() if free else None
                    if buf is None or len(buf) < lead + need + PAGE:
                        buf = mmap.mmap(-1, max(SEGMENT + 4 * 1024 * 1024, lead + need)
                                        + 2 * PAGE)
                    with memoryview(buf) as mem:
                        view = mem[lead:lead + need]
                    _zero_fill(view, ids, lengths)
                    runs = _plan(reader, ids, lengths, base)
                    futures = _submit_runs(reader, runs, pool, view, base, cancel)
                    del view
                    inflight.append(_Segment(base, ids, lengths, buf, futures, lead))
                    if len(inflight) > 3:  # three segments fetched ahead of the one written
                        finish(inflight.popleft())
                while inflight:
                    finish(inflight.popleft())
                settle()
            except BaseException:
                for seg in inflight:
                    for fut in seg.futures:
                        fut.cancel()
                raise
    finally:
        writer.shutdown(wait=True)  # no write may outlive the caller's file descriptors
    check_digest(manifest, chunk_digest, hasher)


def _restore_packwise(reader: BlobReader, manifest: Manifest, fd: int,
                      progress: Callable[[int, int], None] | None,
                      cancel: threading.Event | None,
                      still_locked: Callable[[], None] | None,
                      stats: prefetch.FetchStats) -> None:
    """Write every chunk of a version-2 snapshot into the pre-sized file ``fd`` in pack
    order: window by window (one chunk list), the runs of packs are fetched and decoded in
    parallel and each blob is written at its offsets by the thread that decoded it (page
    cache writes: blobs are not page-aligned, and a pwrite of a decoded blob costs less
    than assembling pages). Zero chunks stay holes. The chunk-list digest is checked last."""
    size, done = manifest.info.bytes, 0
    chunk_digest = chunk_list_hasher()

    def sink(plain: bytes, offsets: list[int]) -> None:
        for off in offsets:
            _pwrite_all(fd, plain, off)

    def tick(run: prefetch.Run) -> None:
        nonlocal done
        done += run.raw_bytes
        if still_locked is not None:
            still_locked()
        if cancel is not None and cancel.is_set():
            raise Cancelled("restore cancelled")
        if progress is not None:
            progress(done, size)

    threads = prefetch.threads_for(reader)
    with ThreadPoolExecutor(threads, thread_name_prefix="strongroom-restore") as pool:
        for base, ids, lengths in _trees(reader, manifest, chunk_digest):
            done += sum(n for cid, n in zip(ids, lengths) if cid == ZERO_ID)  # holes
            runs = prefetch.plan(reader, ids, lengths, base)
            prefetch.fetch_runs(reader, runs, pool, sink, stats, cancel, tick, 2 * threads)
    if progress is not None:
        progress(size, size)
    check_digest(manifest, chunk_digest, None)


class _PageWriter:
    """Writes the in-order segments of a file target in whole pages, with O_DIRECT when the
    file system allows it (filling fresh page-cache pages costs ~1–3 kernel CPU-s per GB on
    these VMs; a direct write almost none). Pages made only of zero chunks are not written:
    they stay holes of the pre-sized file. The last partial page of each segment is carried
    into the next segment's ``lead``."""

    def __init__(self, fd: int, path: Path):
        self.fd = fd
        self.dfd = -1
        flag = getattr(os, "O_DIRECT", 0)
        if flag:
            try:
                self.dfd = os.open(path, os.O_WRONLY | flag)
            except OSError:
                self.dfd = -1
        self.tail = b""  # image bytes from the last page boundary to the end of what came

    def close(self) -> None:
        if self.dfd >= 0:
            os.close(self.dfd)
            self.dfd = -1

    def emit(self, seg: _Segment, _view: memoryview) -> None:
        assert len(self.tail) == seg.lead
        start = seg.base - seg.lead  # page-aligned
        end = seg.base + seg.size
        stop = end - end % PAGE
        with memoryview(seg.buf) as mem:
            mem[:seg.lead] = self.tail
            pieces: list[list[int]] = []
            if seg.lead and self.tail.count(0) != len(self.tail):
                pieces.append([start, start + PAGE])
            pos = seg.base
            for cid, length in zip(seg.ids, seg.lengths):
                if cid != ZERO_ID:
                    a = max(start, pos - pos % PAGE)
                    b = min(stop, pos + length + (-(pos + length)) % PAGE)
                    if a < b:
                        if pieces and a <= pieces[-1][1]:
                            pieces[-1][1] = max(pieces[-1][1], b)
                        else:
                            pieces.append([a, b])
                pos += length
            for a, b in pieces:
                self._pwrite(mem[a - start:b - start], a)
            self.tail = bytes(mem[stop - start:end - start])

    def finish(self, size: int) -> None:
        if self.tail.count(0) != len(self.tail):
            block = mmap.mmap(-1, PAGE)
            block[:len(self.tail)] = self.tail
            with memoryview(block) as mem:
                self._pwrite(mem, size - len(self.tail))
            block.close()
            os.ftruncate(self.fd, size)  # drop the padding of the last page

    def _pwrite(self, data: memoryview, offset: int) -> None:
        if self.dfd >= 0:
            try:
                _pwrite_all(self.dfd, data, offset)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.close()  # refused after all: buffered writes from here on
        _pwrite_all(self.fd, data, offset)


def restore_to_path(reader: BlobReader, manifest: Manifest, out: Path,
                    progress: Callable[[int, int], None] | None,
                    cancel: threading.Event | None,
                    still_locked: Callable[[], None] | None = None, *,
                    sha256: bool = False, in_order: bool = False,
                    stats: prefetch.FetchStats | None = None) -> str | None:
    """Write the image into ``<out>.strongroom-tmp-XXXX`` (all-zero chunks stay holes); only
    when every chunk and the digest check out does the file get its final name. A version-2
    snapshot is written in pack order; a version-1 snapshot (whole-image digest), or any
    with ``sha256`` (or ``in_order``, for benches), is assembled in order and hashed.
    Returns the SHA-256 hex when asked."""
    size = manifest.info.bytes
    short_switches()
    if out.is_dir():
        raise UsageError(f"{out} is a directory: give a file name for the restored image")
    if not out.parent.is_dir():
        raise UsageError(f"folder {out.parent} does not exist: create it first")
    tmp = out.parent / f"{out.name}.strongroom-tmp-{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot write to folder {out.parent}: {exc.strerror}") from None
    in_order = in_order or sha256 or not manifest.info.digest.startswith(DIGEST_CHUNKS)
    writer = _PageWriter(fd, tmp) if in_order else None
    image_sha = hashlib.sha256() if sha256 else None
    try:
        os.ftruncate(fd, size)  # all-zero chunks stay holes
        if writer is None:
            _restore_packwise(reader, manifest, fd, progress, cancel, still_locked,
                              stats or prefetch.FetchStats())
        else:
            _restore(reader, manifest, writer.emit, progress, cancel, page_aligned=True,
                     still_locked=still_locked, sha256=image_sha)
            writer.finish(size)
        # No fsync: forcing the image to disk would double the restore time; callers that
        # need durability sync the result.
        if writer is not None:
            writer.close()
        os.close(fd)
        fd = -1
        os.replace(tmp, out)
    except BaseException:
        if writer is not None:
            writer.close()
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return image_sha.hexdigest() if image_sha is not None else None


def restore_to_stream(reader: BlobReader, manifest: Manifest, out: BinaryIO,
                      progress: Callable[[int, int], None] | None,
                      cancel: threading.Event | None,
                      still_locked: Callable[[], None] | None = None, *,
                      sha256: bool = False) -> str | None:
    """Sequential writes (a pipe, stdout, a multipart upload); verified all the same, but what
    was written before a failure cannot be taken back: the caller must report the failure.
    Returns the image's SHA-256 hex when asked."""
    image_sha = hashlib.sha256() if sha256 else None
    short_switches()
    _restore(reader, manifest, lambda seg, view: _write_all(out, view), progress, cancel,
             still_locked=still_locked, sha256=image_sha)
    flush = getattr(out, "flush", None)
    if flush is not None:
        flush()
    return image_sha.hexdigest() if image_sha is not None else None


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
