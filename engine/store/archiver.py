"""The archiver (backups): read → chunk → (hash, zero check, dedup, compress, encrypt) → pack.

Threads: one reader (reads into a small pool of reused buffers, chunks them with FastCDC and
carries the unfinished tail into the next buffer), a pool of two workers (the heavy per-chunk
work: BLAKE3 and zstd, both release the GIL), the calling thread as the ordered writer that
builds chunk lists and has the repository's PackWriter encrypt each new chunk straight into
its pack (AES-GCM is ~5% of the work; sealing in place spares a copy made under the GIL),
whose two uploaders put finished packs. The snapshot's digest is over the chunk
list (each chunk is already checked against its keyed id on restore): a second BLAKE3 pass over
the whole image would cost a core-second per few GB for nothing (docs/FORMAT.md §9). Bounded queues and the fixed buffer pool
keep memory flat whatever the image size.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import blake3
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyfastcdc import FastCDC

from engine.errors import OperationError
from engine.store.backends.base import Backend, Buffer, is_disk_full
from engine.store.crypto import FLAG_RAW, FLAG_ZSTD, NONCE, Keys, Sealer
from engine.store.index import IndexCache
from engine.store.known import KnownIds
from engine.store.pack import BLOB_DATA, BLOB_TREE
from engine.store.repository import Cancelled, PackWriter
from engine.store.snapshot import (CHUNKS_PER_TREE, DIGEST_CHUNKS, TREE_ENTRY, ZERO_ID, Manifest,
                                   SnapshotInfo, TreeRef, chunk_list_hasher, now_iso,
                                   seal_manifest, snapshot_name)
from engine.store.switching import short_switches

READ_BUFFER = 8 * 1024 * 1024
BUFFERS = 5  # one being read, three queued, one with the writer
ZSTD_LEVEL = 1


@dataclass
class ChunkerParams:
    avg: int
    min: int
    max: int

    def as_dict(self) -> dict[str, int]:
        return {"avg": self.avg, "min": self.min, "max": self.max}


@dataclass
class _Segment:
    """One read buffer on its way from the reader to the writer: bytes ``fresh:end`` are new
    (the ones before were carried over from the previous buffer); ``work`` is the workers'
    per-chunk result, None when the buffer held no complete chunk."""

    buf: bytearray
    fresh: int
    end: int
    work: Future | None


class BackupJob:
    def __init__(self, backend: Backend, keys: Keys, cache: IndexCache, chunker: ChunkerParams):
        self.backend, self.keys, self.cache, self.chunker = backend, keys, cache, chunker
        self.sealer = Sealer(keys.data)
        self.aead = AESGCM(keys.data)
        self.zeros = bytes(chunker.max)
        self.known = KnownIds(cache)
        self.known_trees: set[bytes] = set()
        self.writer = PackWriter(backend, self.sealer, cache, on_indexed=self.known.indexed)
        self._local = threading.local()
        self.stop = threading.Event()
        self.chunk_digest = chunk_list_hasher()

    # ---- workers -------------------------------------------------------------------------
    def _process(self, buf: bytearray, spans: list[tuple[int, int]]) -> list:
        cctx = getattr(self._local, "cctx", None)
        if cctx is None:
            cctx = self._local.cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        view, zeros, known, key = memoryview(buf), self.zeros, self.known, self.keys.chunk_id
        out: list[tuple[bytes, int, tuple[int, Buffer] | None]] = []
        new: list[int] = []  # indexes in out of the chunks to store
        maybe_known: list[int] = []  # to confirm, in one SQLite query for the buffer
        views: list[memoryview] = []
        for start, length in spans:
            mv = view[start:start + length]
            if mv[0] == 0 and zeros.startswith(mv):
                out.append((ZERO_ID, length, None))
                views.append(mv)
                continue
            cid = blake3.blake3(mv, key=key).digest()
            (maybe_known if known.maybe(cid) else new).append(len(out))
            out.append((cid, length, None))
            views.append(mv)
        if maybe_known:
            stored = known.confirm([out[i][0] for i in maybe_known])
            new.extend(i for i in maybe_known if out[i][0] not in stored)  # new after all
        if new:
            self._seal(cctx, out, [views[i] for i in new], new)
        return out

    @staticmethod
    def _seal(cctx: zstandard.ZstdCompressor, out: list, views: list[memoryview],
              where: list[int]) -> None:
        """Compress the new chunks in one call (one GIL release for the buffer, not one a
        chunk) and keep each frame that pays; the writer encrypts straight into the pack."""
        frames = cctx.multi_compress_to_buffer(views, threads=0)
        for n, (i, mv) in enumerate(zip(where, views)):
            frame = frames[n]
            length = len(mv)
            cid, _, _ = out[i]
            if len(frame) < length - (length >> 5):
                out[i] = (cid, length, (FLAG_ZSTD, frame))
            else:
                out[i] = (cid, length, (FLAG_RAW, mv))

    # ---- reader --------------------------------------------------------------------------
    def _read(self, source: BinaryIO, workers: ThreadPoolExecutor, ordered: queue.Queue,
              pool: queue.Queue, cancel: threading.Event | None) -> None:
        """Reads and chunks; hands each buffer on as a ``_Segment`` (the writer hashes its new
        bytes in order and gives the buffer back to ``pool``)."""
        try:
            cdc = FastCDC(self.chunker.avg, min_size=self.chunker.min, max_size=self.chunker.max,
                          seed=self.keys.chunker_seed)
            maxlen = self.chunker.max
            buf, carry = pool.get(), 0
            while True:
                if self.stop.is_set():
                    return
                if cancel is not None and cancel.is_set():
                    raise Cancelled("backup cancelled; no snapshot was recorded")
                view = memoryview(buf)
                try:
                    filled = carry + _read_into(source, view[carry:])
                except OSError as exc:
                    raise OperationError(f"cannot read the image to back up: "
                                         f"{exc.strerror or exc} (no snapshot was recorded)") from None
                eof = filled < len(buf)
                fresh = carry  # bytes before this were already hashed with the previous buffer
                limit = filled if eof else filled - maxlen
                spans, end = [], 0
                for ch in cdc.cut_buf(view[:filled]):
                    if ch.offset > limit or (not eof and ch.offset == limit):
                        break
                    spans.append((ch.offset, ch.length))
                    end = ch.offset + ch.length
                if eof:
                    end = filled
                nxt = None
                if not eof:
                    while nxt is None:
                        try:
                            nxt = pool.get(timeout=0.2)
                        except queue.Empty:
                            if self.stop.is_set():
                                return
                    carry = filled - end
                    nxt[:carry] = view[end:filled]
                del view
                work = workers.submit(self._process, buf, spans) if spans else None
                _put(ordered, _Segment(buf, fresh, filled, work), self.stop)
                if eof:
                    break
                buf = nxt
            _put(ordered, None, self.stop)
        except BaseException as exc:  # handed to the writer, which raises it
            _put(ordered, exc, self.stop)

    # ---- writer --------------------------------------------------------------------------
    def _store_tree(self, entries: bytearray, offset: int, nbytes: int, count: int) -> TreeRef:
        raw = bytes(entries)
        self.chunk_digest.update(raw)  # every tree, in image order, stored or not
        tid = blake3.blake3(raw, key=self.keys.chunk_id).digest()
        if tid not in self.known_trees and not self.cache.has(tid, BLOB_TREE):
            packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw)
            payload, flag = (packed, FLAG_ZSTD) if len(packed) < len(raw) else (raw, FLAG_RAW)
            nonce = os.urandom(NONCE)
            self.writer.add(BLOB_TREE, tid, flag, len(raw), nonce,
                            self.aead.encrypt(nonce, payload, b"\x01" + tid))
            self.known_trees.add(tid)
        return TreeRef(tid, offset, nbytes, count)

    def run(self, source: BinaryIO, *, name: str, tags: dict[str, str], source_info: dict,
            total: int, progress: Callable[[int, int], None] | None,
            cancel: threading.Event | None,
            stored_progress: Callable[[int], None] | None = None,
            still_locked: Callable[[], None] | None = None,
            when: str | None = None) -> tuple[SnapshotInfo, int]:
        """``still_locked`` raises when the store lock is lost: called for each read buffer
        and last before the snapshot is written, so none is recorded without the lock.
        ``when``: the snapshot's recorded time (manifest format), now by default."""
        started, when = time.monotonic(), when or now_iso()
        short_switches()
        ordered: queue.Queue = queue.Queue(maxsize=BUFFERS - 1)
        pool: queue.Queue = queue.Queue()
        for _ in range(BUFFERS):
            pool.put(bytearray(READ_BUFFER))
        workers = ThreadPoolExecutor(2, thread_name_prefix="strongroom-chunk")
        reader = threading.Thread(target=self._read, name="strongroom-read", daemon=True,
                                  args=(source, workers, ordered, pool, cancel))
        trees: list[TreeRef] = []
        tree, tree_start, tree_bytes, tree_count, done = bytearray(), 0, 0, 0, 0
        # The live figure moves when a pack lands, not when the writer next looks: a slow
        # upload would otherwise show nothing stored until the backup's end.
        self.writer.on_stored = stored_progress
        reader.start()
        try:
            while True:
                item = ordered.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                results = item.work.result() if item.work else ()
                nonces = os.urandom(NONCE * len(results))  # one call a buffer, not a chunk
                for i, (cid, length, blob) in enumerate(results):
                    tree += TREE_ENTRY.pack(cid, length)
                    tree_bytes += length
                    tree_count += 1
                    if blob is not None and cid not in self.known:
                        self.known.add(cid)
                        flag, payload = blob
                        nonce = nonces[i * NONCE:(i + 1) * NONCE]
                        self.writer.seal(self.aead, BLOB_DATA, cid, flag, length, nonce, payload,
                                         b"\x00" + cid)
                    if tree_count == CHUNKS_PER_TREE:
                        trees.append(self._store_tree(tree, tree_start, tree_bytes, tree_count))
                        tree_start += tree_bytes
                        tree, tree_bytes, tree_count = bytearray(), 0, 0
                    done += length
                pool.put(item.buf)
                if progress is not None:
                    progress(done, total)
                if cancel is not None and cancel.is_set():
                    raise Cancelled("backup cancelled; no snapshot was recorded")
                if still_locked is not None:
                    still_locked()
            if tree_count:
                trees.append(self._store_tree(tree, tree_start, tree_bytes, tree_count))
            self.writer.flush()  # the last pack on its way…
            _drain(pool)  # …while the read buffers are given back (~4 ms of munmap)
            self.writer.finish()
            if stored_progress is not None:  # the final figure, even when nothing was new
                stored_progress(self.writer.stored)
        except BaseException as exc:
            self.stop.set()
            self.writer.abort()
            _drain(ordered)
            reader.join()
            workers.shutdown(wait=True, cancel_futures=True)
            if is_disk_full(exc):
                raise OperationError(
                    f"disk full while writing to the store {self.backend.url}: free some space "
                    "and run the backup again (no snapshot was recorded; data already written "
                    "will be reused)") from None
            raise
        reader.join()
        workers.shutdown(wait=True)
        info = SnapshotInfo(id="", time=when, name=name, bytes=done, stored_bytes=0,
                            seconds=0.0, tags=dict(tags), source=dict(source_info),
                            digest=DIGEST_CHUNKS + self.chunk_digest.hexdigest())
        manifest = Manifest(info, trees, self.chunker.as_dict())
        info.seconds = round(time.monotonic() - started, 3)
        info.stored_bytes = self.writer.stored
        snap_id, sealed = seal_manifest(self.sealer, self.keys.chunk_id, manifest)
        if still_locked is not None:
            still_locked()
        try:
            self.backend.put(snapshot_name(snap_id), sealed)
        except OSError as exc:
            if is_disk_full(exc):
                raise OperationError(f"disk full while writing to the store {self.backend.url}: "
                                     "free some space and run the backup again") from None
            raise
        info.id = snap_id
        return info, done


def _read_into(source: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` as far as the source allows; short only at end of stream."""
    total = 0
    readinto = getattr(source, "readinto", None)
    while total < len(view):
        if readinto is not None:
            n = readinto(view[total:])
        else:
            data = source.read(len(view) - total)
            n = len(data) if data else 0
            view[total:total + n] = data or b""
        if not n:
            break
        total += n
    return total


def _put(q: queue.Queue, item: object, stop: threading.Event) -> None:
    while True:
        try:
            q.put(item, timeout=0.2)
            return
        except queue.Full:
            if stop.is_set():
                return


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
