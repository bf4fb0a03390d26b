"""“Do we already store this chunk?” in ~4 bytes per chunk id, however large the store.

A backup asks this for every chunk (~16k times per GiB). The store's data ids live in the local
SQLite index cache, where one lookup costs ~10–25 µs; a Python ``set`` of them costs ~115 bytes
an id (219 MiB for 2 M ids, a 128 GiB store; 1.7 GiB for 16 M, 1 TiB), and the ids a first
backup of a 1 TiB volume writes would grow it as much again.

So memory holds a 48-bit prefix of each id, 4 bytes apiece (``PrefixSet``). A prefix miss proves
the chunk is new; a prefix hit is confirmed exactly — from the ids this backup wrote whose packs
the uploader has not indexed yet (a few thousand, kept whole), else from SQLite, one query per
read buffer. A colliding prefix therefore costs a lookup, never a skipped chunk.
``bench/known_ids.py`` measures memory and per-call costs against the former set.
"""
from __future__ import annotations

import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from engine.store.index import IndexCache
from engine.store.pack import BLOB_DATA

PREFIX_BYTES = 6  # 48 bits: the top 16 pick a bucket, the next 32 are kept
BUCKET_BITS = 16
BUCKETS = 1 << BUCKET_BITS
KEY_BITS = 8 * PREFIX_BYTES - BUCKET_BITS
KEY_MASK = (1 << KEY_BITS) - 1
KEY_TYPE = next(t for t in "IL" if array(t).itemsize == KEY_BITS // 8)
SLOT_TYPE = next(t for t in "HI" if array(t).itemsize == BUCKET_BITS // 8)


def prefix(cid: bytes) -> int:
    return int.from_bytes(cid[:PREFIX_BYTES], "big")


def _columns(raw: bytes, start: int, width: int, typecode: str) -> array:
    """Bytes ``start:start+width`` of every PREFIX_BYTES-long big-endian record in ``raw``, as
    unsigned integers (strided slices: no Python work per record)."""
    out = bytearray(width * (len(raw) // PREFIX_BYTES))
    for j in range(width):
        out[j::width] = raw[start + j::PREFIX_BYTES]
    values = array(typecode, out)
    if sys.byteorder == "little":
        values.byteswap()
    return values


class PrefixSet:
    """A set of 48-bit integers in ~4 bytes each, split by the top 16 bits into 65536 buckets
    of sorted 32-bit keys searched with ``bisect``.

    Two parts: what ``load_sorted`` read (the store's ids) in one contiguous array, with the
    bucket bounds beside it (exactly 4 bytes an id); and what ``add`` inserts (this backup's
    ids) in an array per bucket, ~n/65536 keys each, so an insert moves a few hundred bytes
    even at 16 M ids.

    One thread adds while others test: an added-to bucket is never changed once others can see
    it, an insert swaps in a new copy, so a reader sees the set before or after each insert."""

    def __init__(self) -> None:
        self._base = array(KEY_TYPE)
        # bucket b of the loaded part is _base[_bounds[b]:_bounds[b + 1]]
        self._bounds = array("Q", bytes(8 * (BUCKETS + 1)))
        self._added: list[array | None] = [None] * BUCKETS
        self.count = 0

    def __contains__(self, value: int) -> bool:
        slot, key = value >> KEY_BITS, value & KEY_MASK
        lo, hi = self._bounds[slot], self._bounds[slot + 1]
        if lo < hi:
            base = self._base
            i = bisect_left(base, key, lo, hi)
            if i < hi and base[i] == key:
                return True
        bucket = self._added[slot]
        if bucket is None:
            return False
        i = bisect_left(bucket, key)
        return i < len(bucket) and bucket[i] == key

    def add(self, value: int) -> None:
        """Adds a value (a value already loaded may be added again: it is found either way)."""
        slot, key = value >> KEY_BITS, value & KEY_MASK
        bucket = self._added[slot]
        if bucket is None:
            self._added[slot] = array(KEY_TYPE, (key,))
        else:
            i = bisect_left(bucket, key)
            if i < len(bucket) and bucket[i] == key:
                return
            # Copy on write: a reader still searching the old bucket sees it whole and sorted
            # (an insert in place would shift keys under its bisect).
            grown = bucket[:]
            grown.insert(i, key)
            self._added[slot] = grown
        self.count += 1

    def load_sorted(self, batches: Iterable[bytes]) -> None:
        """Loads values given as concatenated PREFIX_BYTES-long big-endian records in ascending
        order (SQLite's ``ORDER BY id``), before any ``add``. Were they not in order, lookups
        could miss some (a chunk stored again), never find one that is not there."""
        if self.count:
            raise ValueError("load_sorted needs an empty set")
        base, bounds = self._base, self._bounds
        for raw in batches:
            if not raw:
                continue
            slots = _columns(raw, 0, BUCKET_BITS // 8, SLOT_TYPE)
            offset = len(base)
            base.extend(_columns(raw, BUCKET_BITS // 8, KEY_BITS // 8, KEY_TYPE))
            for slot in range(slots[0], slots[-1] + 1):  # the buckets this batch reaches into
                bounds[slot + 1] = offset + bisect_right(slots, slot)
        for slot in range(1, BUCKETS + 1):  # buckets with no value end where the one before does
            if bounds[slot] < bounds[slot - 1]:
                bounds[slot] = bounds[slot - 1]
        self.count = len(base)

    def nbytes(self) -> int:
        """Bytes of key storage (the arrays' buffers, not their headers)."""
        added = sum(b.buffer_info()[1] for b in self._added if b is not None)
        return (len(self._base) + added) * KEY_BITS // 8


class KnownIds:
    """The data chunk ids already in the store or written by this backup, for dedup.

    ``maybe(cid)`` is a prefix test: False means surely new; True means "probably stored" and
    the caller confirms with ``confirm`` (batched) or ``in`` (one id). Exact answers come from
    ``unindexed`` — the ids this backup wrote whose packs the uploader has not yet added to the
    SQLite cache — and then from SQLite. The uploader calls ``indexed`` only after ``add_pack``,
    so an id is always in one of the two; reading ``unindexed`` first keeps that true for a
    reader racing the uploader. Safe for the two workers and the writer at once (``add`` from
    the writer only) and the uploaders (``indexed``).

    Memory: ~4 bytes per id of the store and of this backup (prefixes) plus the ids of packs in
    flight (a few thousand), instead of a set of every id."""

    def __init__(self, cache: IndexCache):
        self.cache = cache
        self.prefixes = PrefixSet()
        batches = cache.data_id_prefixes(PREFIX_BYTES)
        try:
            self.prefixes.load_sorted(batches)
        finally:
            batches.close()  # releases the cache's lock even if loading failed half-way
        self.unindexed: set[bytes] = set()

    def maybe(self, cid: bytes) -> bool:
        return prefix(cid) in self.prefixes

    def confirm(self, cids: Sequence[bytes]) -> set[bytes]:
        """The ones of ``cids`` that are stored or written by this backup, exactly."""
        found = {c for c in cids if c in self.unindexed}
        rest = [c for c in cids if c not in found]
        if rest:
            found |= self.cache.have(rest, BLOB_DATA)
        return found

    def __contains__(self, cid: bytes) -> bool:
        if not self.maybe(cid):
            return False
        return cid in self.unindexed or self.cache.has(cid, BLOB_DATA)

    def add(self, cid: bytes) -> None:
        """Records a chunk this backup is storing (writer thread only)."""
        self.unindexed.add(cid)
        self.prefixes.add(prefix(cid))

    def indexed(self, ids: Iterable[bytes]) -> None:
        """These ids are in the SQLite cache now (called after ``IndexCache.add_pack``)."""
        self.unindexed.difference_update(ids)
