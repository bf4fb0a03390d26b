"""The index cache when packs go away (prune) or are marked as garbage: every copy of a blob is
known, garbage copies are read only as a last resort and never deduplicated against."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from engine.store.backends import LocalBackend
from engine.store.crypto import Keys, Sealer
from engine.store.index import (GarbageList, IndexCache, cache_path, delta_ad, encode_delta,
                                seal_garbage_list)
from engine.store.known import KnownIds
from engine.store.pack import (BLOB_DATA, PACK_MAGIC, BlobEntry, build_trailer, new_pack_id,
                               pack_name)


def entry(cid: bytes, offset: int = 8) -> BlobEntry:
    return BlobEntry(BLOB_DATA, 0, cid, offset, 100, 100)


@pytest.fixture
def world(tmp_path: Path):
    backend = LocalBackend(tmp_path / "store")
    backend.create()
    sealer = Sealer(Keys.from_master(os.urandom(32)).data)
    cache = IndexCache("test", tmp_path / "cache.sqlite")
    yield backend, sealer, cache
    cache.close()


def _delta(backend: LocalBackend, sealer: Sealer, packs: list[tuple[str, list[BlobEntry]]]) -> str:
    delta_id = os.urandom(16).hex()
    backend.put(f"index/{delta_id}", sealer.seal_object(encode_delta(packs), delta_ad(delta_id),
                                                        compress=False))
    return f"index/{delta_id}"


def test_a_blob_in_two_packs_is_still_found_when_one_pack_goes(world) -> None:
    backend, sealer, cache = world
    cid, a, b = os.urandom(32), new_pack_id(), new_pack_id()
    for pack in (a, b):
        backend.put(pack_name(pack), b"pack bytes")
    old = _delta(backend, sealer, [(a, [entry(cid)]), (b, [entry(cid, 200)])])
    assert cache.sync(backend, sealer) == []
    # a prune: the index rewritten without pack a, then pack a deleted
    _delta(backend, sealer, [(b, [entry(cid, 200)])])
    backend.delete(old)
    backend.delete(pack_name(a))
    assert cache.sync(backend, sealer) == []  # nothing lost: no problem to report
    loc = cache.lookup(cid, BLOB_DATA)
    assert loc is not None and (loc.pack, loc.offset) == (b, 200)
    assert cache.have([cid], BLOB_DATA) == {cid}


def test_a_pack_that_a_delta_lists_but_the_store_lacks_is_a_problem(world) -> None:
    backend, sealer, cache = world
    cid, a = os.urandom(32), new_pack_id()
    backend.put(pack_name(a), b"pack bytes")
    _delta(backend, sealer, [(a, [entry(cid)])])
    cache.sync(backend, sealer)
    backend.delete(pack_name(a))
    assert cache.sync(backend, sealer) == [f"pack {a} is in the index but missing from the store"]
    assert cache.lookup(cid, BLOB_DATA) is None


def test_garbage_copies_are_read_last_and_never_deduplicated(world) -> None:
    backend, sealer, cache = world
    only, both = os.urandom(32), os.urandom(32)
    marked, live = new_pack_id(), new_pack_id()
    for pack in (marked, live):
        backend.put(pack_name(pack), b"pack bytes")
    _delta(backend, sealer, [(marked, [entry(only), entry(both, 108)]),
                             (live, [entry(both, 8)])])
    glist = GarbageList(os.urandom(16).hex(), "2026-01-01T00:00:00.000000Z", [marked])
    backend.put(glist.name, seal_garbage_list(sealer, glist))
    assert cache.sync(backend, sealer) == []
    assert cache.garbage() == {marked}
    assert cache.lookup(only, BLOB_DATA).pack == marked  # readable while it exists
    assert cache.lookup(both, BLOB_DATA).pack == live
    assert cache.lookup_many([only, both], BLOB_DATA)[both].pack == live
    assert not cache.has(only, BLOB_DATA) and cache.have([only, both], BLOB_DATA) == {both}
    known = KnownIds(cache)
    assert only not in known and both in known
    backend.delete(glist.name)  # the prune that wrote it recovered the pack
    cache.sync(backend, sealer)
    assert cache.has(only, BLOB_DATA) and cache.garbage() == set()


def test_a_cache_of_the_older_layout_is_rebuilt(tmp_path: Path) -> None:
    path = cache_path("old-store")
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE blobs (id BLOB NOT NULL, type INTEGER NOT NULL, pack TEXT NOT NULL,"
               " offset INTEGER, stored_len INTEGER, raw_len INTEGER, flags INTEGER, "
               "PRIMARY KEY (id, type)) WITHOUT ROWID")
    db.execute("INSERT INTO blobs VALUES (x'00', 0, 'p', 0, 0, 0, 0)")
    db.commit()
    db.close()
    cache = IndexCache("old-store")
    try:
        assert cache.all_blobs() == []
        cache.add_pack("aa" * 16, [entry(b"\1" * 32), entry(b"\1" * 32, 200)][:1], via="local")
        cache.add_pack("bb" * 16, [entry(b"\1" * 32, 200)], via="local")
        assert len(cache.all_blobs()) == 2
    finally:
        cache.close()


def test_a_delta_replaced_between_listing_and_reading_is_not_a_problem(world) -> None:
    backend, sealer, cache = world
    cid, a = os.urandom(32), new_pack_id()
    backend.put(pack_name(a), PACK_MAGIC + build_trailer(sealer, a, [entry(cid)]))
    listed = _delta(backend, sealer, [(a, [entry(cid)])])
    real_list = backend.list

    def listing(prefix: str):
        names = list(real_list(prefix))
        if prefix == "index/":  # a prune consolidates right after this listing
            _delta(backend, sealer, [(a, [entry(cid)])])
            backend.delete(listed)
        return iter(names)

    backend.list = listing  # type: ignore[method-assign]
    assert cache.sync(backend, sealer) == []
    backend.list = real_list  # type: ignore[method-assign]
    assert cache.sync(backend, sealer) == []
    assert cache.lookup(cid, BLOB_DATA).pack == a
