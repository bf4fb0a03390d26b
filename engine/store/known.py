"""“Do we already store this chunk?” in a few bytes per chunk id, however large the store.

A backup asks this for every chunk (~16k times per GiB). The store's data ids live in the local
SQLite index cache, where one lookup costs ~10 µs; a Python ``set`` of them costs ~130 bytes per id
(2 M ids, a 128 GiB store, ~260 MB), and a first backup of a 1 TiB volume adds 16 M more.

So memory holds only a 48-bit prefix of each id, 4 bytes apiece (``PrefixSet``); a prefix miss
proves the chunk is new, and a prefix hit is confirmed exactly — from the ids this backup wrote
whose packs the uploader has not indexed yet (a few thousand, kept whole), else from SQLite,
batched per read buffer. A colliding prefix therefore costs one more lookup, never a skipped chunk.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from engine.store.index import IndexCache
from engine.store.pack import BLOB_DATA

PREFIX_BYTES = 6  # 48 bits: the top 16 pick a bucket, the next 32 are kept
BUCKET_BITS = 16
KEY_BITS = 8 * PREFIX_BYTES - BUCKET_BITS
KEY_MASK = (1 << KEY_BITS) - 1
KEY_TYPE = next(t for t in "IL" if array(t).itemsize == KEY_BITS // 8)


def prefix(cid: bytes) -> int:
    return int.from_bytes(cid[:PREFIX_BYTES], "big")


class PrefixSet:
    """A set of 48-bit integers in ~4 bytes each: 65536 buckets (by the top 16 bits) of sorted
    32-bit keys, searched with ``bisect``. Buckets hold ~n/65536 keys, so an insert moves a few
    hundred bytes even at 16 M ids.

    One thread adds while others test: a bucket is never changed once others can see it, an
    insert swaps in a new one, so a reader sees the set before or after each insert."""

    def __init__(self) -> None:
        self._buckets: list[array | None] = [None] * (1 << BUCKET_BITS)
        self.count = 0

    def __contains__(self, value: int) -> bool:
        bucket = self._buckets[value >> KEY_BITS]
        if bucket is None:
            return False
        key = value & KEY_MASK
        i = bisect_left(bucket, key)
        return i < len(bucket) and bucket[i] == key

    def add(self, value: int) -> None:
        slot = value >> KEY_BITS
        bucket = self._buckets[slot]
        key = value & KEY_MASK
        if bucket is None:
            self._buckets[slot] = array(KEY_TYPE, (key,))
            self.count += 1
            return
        i = bisect_left(bucket, key)
        if i == len(bucket) or bucket[i] != key:
            # Copy on write: a reader still searching the old bucket sees it whole and sorted
            # (an insert in place would shift keys under its bisect).
            grown = bucket[:i]
            grown.append(key)
            grown.extend(bucket[i:])
            self._buckets[slot] = grown
            self.count += 1

    def extend_sorted(self, values: Iterable[int]) -> None:
        """Adds values, fast when they come in ascending order (as SQLite returns ids
        ``ORDER BY id``): appended rather than inserted. Only into an empty set."""
        if self.count:
            raise ValueError("extend_sorted needs an empty set")
        buckets, slot, bucket, last = self._buckets, -1, array(KEY_TYPE), -1
        for value in values:
            if value <= last:
                if value < last:  # out of order after all: insert it where it belongs
                    self.add(value)
                    bucket = buckets[slot] if slot >= 0 else bucket  # add may swap it
                continue
            last = value
            if value >> KEY_BITS != slot:
                slot = value >> KEY_BITS
                bucket = buckets[slot] = array(KEY_TYPE)
            bucket.append(value & KEY_MASK)
            self.count += 1

    def nbytes(self) -> int:
        """Bytes of key storage (what the buckets' buffers hold, not their headers)."""
        return sum(b.buffer_info()[1] for b in self._buckets if b is not None) * KEY_BITS // 8


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
        self.prefixes.extend_sorted(map(prefix, cache.data_id_prefixes(PREFIX_BYTES)))
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
