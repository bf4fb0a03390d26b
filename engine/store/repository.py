"""The repository layer (restic's ``internal/repository``): the one way blobs go into packs and
come back out, for every operation of the store.

- :class:`PackWriter` fills packs with sealed blobs, puts finished packs in the background and
  writes index deltas that list them. The archiver (backups) and the pruner (repacking) use it.
- :class:`BlobReader` finds a blob through the index cache, fetches it, authenticates,
  decompresses and verifies it. The restorer, the checker and the pruner use it.

A sealed blob does not depend on the pack that holds it (its associated data is its type and
id), so repacking copies sealed bytes unchanged.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.errors import OperationError
from engine.store.backends.base import Backend, Buffer, NotFound, PageBuffer
from engine.store.crypto import FLAG_RAW, FLAG_ZSTD, NONCE, TAG, IntegrityError, Keys, Sealer
from engine.store.index import IndexCache, Location, delta_ad, encode_delta, new_delta_id
from engine.store.pack import (BLOB_DATA, BLOB_TREE, PACK_MAGIC, BlobEntry, blob_ad,
                               build_trailer, new_pack_id, pack_name)
from engine.store.snapshot import TreeRef, decode_tree

PACK_TARGET = 32 * 1024 * 1024
UPLOADS_IN_FLIGHT = 2
DELTA_EVERY_PACKS = 8
DELTA_EVERY_SECONDS = 10.0
RUN_BUFFER = 2 * 1024 * 1024  # the smallest per-thread buffer for reads from a local store


class Cancelled(OperationError):
    """The operation was cancelled; nothing was recorded (no snapshot, nothing deleted)."""


@dataclass
class _Pack:
    """A pack being filled: its bytes in a reused page-aligned buffer (see PageBuffer)."""

    buf: PageBuffer
    id: str = field(default_factory=new_pack_id)
    entries: list[BlobEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.buf.size = 0
        self.buf.append(PACK_MAGIC)

    @property
    def size(self) -> int:
        return self.buf.size


class PackWriter:
    """Packs sealed blobs and stores them: ``add`` blobs from one thread; finished packs are put
    by two uploader threads, each added to the local index cache once stored, and listed in an
    index delta every DELTA_EVERY_PACKS packs or DELTA_EVERY_SECONDS (and at ``finish``).

    ``on_indexed(ids)`` is told (from an uploader thread) the blob ids of each pack once the
    cache answers for them; ``on_stored(total)`` the bytes stored so far, in order, each time a
    pack or delta lands (under a lock: it must be quick)."""

    def __init__(self, backend: Backend, sealer: Sealer, cache: IndexCache, *,
                 on_indexed: Callable[[Iterable[bytes]], None] | None = None,
                 pack_target: int | None = None):
        self.backend, self.sealer, self.cache = backend, sealer, cache
        self.on_indexed = on_indexed
        self.on_stored: Callable[[int], None] | None = None
        self.target = pack_target or PACK_TARGET
        self.pool = ThreadPoolExecutor(UPLOADS_IN_FLIGHT, thread_name_prefix="strongroom-put")
        self.slots = threading.Semaphore(UPLOADS_IN_FLIGHT)
        self.futures: list[Future] = []
        self.lock = threading.Lock()
        self.pending: list[tuple[str, list[BlobEntry]]] = []
        self.last_delta = time.monotonic()
        self.stored = 0
        self.packs: list[str] = []  # ids of the packs stored so far, in the order they landed
        self.free: list[PageBuffer] = []  # pack buffers back from the store, for reuse
        self.closing = False  # finish() has begun: buffers back from the store are unmapped
        self.pack = self._new_pack()

    def _new_pack(self) -> _Pack:
        with self.lock:
            buf = self.free.pop() if self.free else PageBuffer(self.target + (1 << 20))
        return _Pack(buf)

    def add(self, blob_type: int, blob_id: bytes, flags: int, raw_len: int,
            *parts: Buffer) -> None:
        """Append one sealed blob (``parts`` concatenated: nonce and ciphertext, or a sealed
        blob copied whole); the pack is closed and put once it reaches the target size."""
        pack = self.pack
        offset = pack.size
        for part in parts:
            pack.buf.append(part)
        self._added(pack, BlobEntry(blob_type, flags, blob_id, offset, pack.size - offset,
                                    raw_len))

    def seal(self, aead: AESGCM, blob_type: int, blob_id: bytes, flags: int, raw_len: int,
             nonce: bytes, payload: Buffer, ad: bytes) -> None:
        """Encrypt ``payload`` straight into the pack (nonce, ciphertext, tag): no sealed copy
        to allocate, and no copy into the pack made while holding the GIL (encrypt_into
        releases it)."""
        pack = self.pack
        offset = pack.buf.append(nonce)
        with pack.buf.extend(len(payload) + TAG) as out:
            aead.encrypt_into(nonce, payload, ad, out)
        self._added(pack, BlobEntry(blob_type, flags, blob_id, offset, pack.size - offset,
                                    raw_len))

    def _added(self, pack: _Pack, entry: BlobEntry) -> None:
        """List a blob just written into ``pack``; close the pack once it is full."""
        pack.entries.append(entry)
        if pack.size >= self.target:
            self.flush()

    def flush(self) -> None:
        """Close the pack being filled (if it holds anything) and hand it to the uploaders."""
        pack = self.pack
        if not pack.entries:
            return
        self.raise_failures()
        trailer = build_trailer(self.sealer, pack.id, pack.entries)
        self.slots.acquire()
        fut = self.pool.submit(self._put, pack, trailer)
        fut.add_done_callback(lambda _f: self.slots.release())
        self.futures.append(fut)
        self.pack = self._new_pack()  # after submit: reuses a buffer put back meanwhile

    def raise_failures(self) -> None:
        for fut in [f for f in self.futures if f.done()]:
            self.futures.remove(fut)
            fut.result()

    def _put(self, pack: _Pack, trailer: bytes) -> None:
        pack.buf.append(trailer)
        self.backend.put(pack_name(pack.id), pack.buf)
        size = pack.size
        with self.lock:
            closing = self.closing
            if not closing:
                self.free.append(pack.buf)
        if closing:
            pack.buf.close()
        self.cache.add_pack(pack.id, pack.entries, via="local")
        if self.on_indexed is not None:
            self.on_indexed(e.id for e in pack.entries)  # only now: SQLite answers for them
        with self.lock:
            self.packs.append(pack.id)
            self._count(size)
            self.pending.append((pack.id, pack.entries))
            due = (len(self.pending) >= DELTA_EVERY_PACKS
                   or time.monotonic() - self.last_delta >= DELTA_EVERY_SECONDS)
        if due:
            self.flush_delta()

    def flush_delta(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, []
            self.last_delta = time.monotonic()
            if not pending:
                return
            delta_id = new_delta_id()
            sealed = self.sealer.seal_object(encode_delta(pending), delta_ad(delta_id),
                                             compress=False)
            self.backend.put(f"index/{delta_id}", sealed)
            self._count(len(sealed))

    def _count(self, nbytes: int) -> None:
        """Add stored bytes (the lock held) and tell ``on_stored``."""
        self.stored += nbytes
        if self.on_stored is not None:
            self.on_stored(self.stored)

    def finish(self) -> None:
        """Put the last pack, wait for every upload, write the last delta. The pack buffers
        are unmapped while the last uploads are on their way: ~100 MiB of touched memory
        took this VM ~20 ms of kernel time to give back, which the end of a backup otherwise
        waited for."""
        self.flush()
        with self.lock:
            self.closing = True
            idle, self.free = [*self.free, self.pack.buf], []  # self.pack: empty, never used
        for buf in idle:
            buf.close()
        for fut in self.futures:
            fut.result()
        self.futures.clear()
        self.flush_delta()
        self.pool.shutdown(wait=True)

    def abort(self) -> None:
        """Wait for the uploads in flight (their failures ignored) and list what did reach the
        store in a delta, so that it stays usable; the pack being filled is dropped."""
        for fut in self.futures:
            try:
                fut.result()
            except BaseException:
                pass
        try:
            self.flush_delta()
        except BaseException:
            pass
        self.pool.shutdown(wait=True)


class BlobReader:
    """Fetches, authenticates, decompresses and verifies blobs.

    ``refresh`` (optional) brings the index cache up to date with the store: it is called once
    when a blob or its pack cannot be found, before giving up, because a concurrent prune may
    have moved the blob to another pack since the cache was last synced."""

    def __init__(self, backend: Backend, keys: Keys, cache: IndexCache,
                 refresh: Callable[[], None] | None = None):
        self.backend, self.keys, self.cache = backend, keys, cache
        self.aead = AESGCM(keys.data)
        self.sealer = Sealer(keys.data)
        self.refresh = refresh
        self._local = threading.local()
        self._refreshed = threading.Lock()
        self._refresh_count = 0
        self.fetched = 0

    def _refresh_once(self, seen: int) -> bool:
        """Sync the cache unless another thread did since ``seen``; False if no refresh
        is possible."""
        if self.refresh is None:
            return False
        with self._refreshed:
            if self._refresh_count == seen:
                self.refresh()
                self._refresh_count += 1
        return True

    def locate(self, blob_id: bytes, blob_type: int) -> Location:
        loc = self.cache.lookup(blob_id, blob_type)
        if loc is None and self._refresh_once(self._refresh_count):
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
        seen = self._refresh_count
        loc = self.locate(blob_id, blob_type)
        try:
            sealed = self.backend.get(pack_name(loc.pack), loc.offset, loc.stored_len)
        except NotFound:
            if not self._refresh_once(seen):
                raise IntegrityError(f"pack {loc.pack} is missing from the store") from None
            return self._read_again(blob_id, blob_type, loc)
        self.fetched += loc.stored_len
        return self.decode(sealed, loc, blob_id, blob_type)

    def _read_again(self, blob_id: bytes, blob_type: int, gone: Location) -> bytes:
        loc = self.cache.lookup(blob_id, blob_type)
        if loc is None or loc.pack == gone.pack:
            raise IntegrityError(f"pack {gone.pack} is missing from the store")
        try:
            sealed = self.backend.get(pack_name(loc.pack), loc.offset, loc.stored_len)
        except NotFound:
            raise IntegrityError(f"pack {loc.pack} is missing from the store") from None
        self.fetched += loc.stored_len
        return self.decode(sealed, loc, blob_id, blob_type)

    def read_tree(self, ref: TreeRef) -> tuple[list[bytes], list[int]]:
        """A chunk list, checked against what its manifest says of it."""
        ids, lengths = decode_tree(self.read_blob(ref.id, BLOB_TREE))
        if len(ids) != ref.chunks or sum(lengths) != ref.bytes:
            raise IntegrityError(f"chunk list {ref.id.hex()[:16]} does not match its manifest")
        return ids, lengths

    def fetch(self, pack: str, start: int, length: int) -> memoryview:
        """Bytes ``start:start+length`` of a pack, unverified (``decode`` each blob in them);
        from a local store into a buffer reused by the calling thread, valid until its next
        call. Raises NotFound if the pack is gone, OperationError if it is too short."""
        read_into = getattr(self.backend, "read_into", None)
        if read_into is None:
            data = memoryview(self.backend.get(pack_name(pack), start, length))
        else:
            buf = getattr(self._local, "runbuf", None)
            if buf is None or len(buf) < length:
                buf = self._local.runbuf = bytearray(max(length, RUN_BUFFER))
            data = memoryview(buf)[:length]
            read_into(pack_name(pack), start, data)
        self.fetched += length
        return data

    @property
    def local(self) -> bool:
        """Whether the store is on a local file system (reads are cheap: smaller runs)."""
        return hasattr(self.backend, "read_into")
