"""KnownIds: the dedup question answered from 48-bit prefixes, confirmed exactly."""
from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from engine.store.index import IndexCache
from engine.store.known import PREFIX_BYTES, KnownIds, PrefixSet, prefix
from engine.store.pack import BLOB_DATA, BLOB_TREE, BlobEntry, new_pack_id


def entries(ids: list[bytes], blob_type: int = BLOB_DATA) -> list[BlobEntry]:
    return [BlobEntry(blob_type, 0, cid, 8 + i * 100, 100, 100) for i, cid in enumerate(ids)]


@pytest.fixture
def cache(tmp_path: Path):
    c = IndexCache("test", tmp_path / "cache.sqlite")
    yield c
    c.close()


def twin(cid: bytes) -> bytes:
    """Another id with the same 8-byte (so also 6-byte) prefix."""
    return cid[:8] + bytes(b ^ 0xFF for b in cid[8:])


def test_stored_ids_are_found_and_absent_ones_are_not(cache: IndexCache) -> None:
    stored = [os.urandom(32) for _ in range(70_000)]  # more than one batch from SQLite
    cache.add_pack(new_pack_id(), entries(stored), via="local")
    known = KnownIds(cache)
    assert known.prefixes.count == len(stored)
    assert all(cid in known for cid in stored[::10])
    assert known.confirm(stored) == set(stored)
    absent = [os.urandom(32) for _ in range(5000)]
    assert not any(cid in known for cid in absent)
    assert known.confirm(absent) == set()


def test_an_absent_id_sharing_a_stored_prefix_is_not_reported(cache: IndexCache) -> None:
    stored = [os.urandom(32) for _ in range(100)]
    cache.add_pack(new_pack_id(), entries(stored), via="local")
    known = KnownIds(cache)
    twins = [twin(cid) for cid in stored]
    assert all(known.maybe(t) for t in twins)  # the prefix cannot tell them apart…
    assert not any(t in known for t in twins)  # …the exact check does
    assert known.confirm(twins + stored[:10]) == set(stored[:10])


def test_tree_ids_are_not_data_chunks(cache: IndexCache) -> None:
    tree = os.urandom(32)
    cache.add_pack(new_pack_id(), entries([tree], BLOB_TREE), via="local")
    known = KnownIds(cache)
    assert tree not in known and known.confirm([tree]) == set()


def test_ids_added_during_the_backup_are_found_before_and_after_indexing(
        cache: IndexCache) -> None:
    known = KnownIds(cache)
    new = [os.urandom(32) for _ in range(3000)]
    for cid in new:
        known.add(cid)
    # In flight: the pack is not in SQLite yet, memory must answer exactly.
    assert not cache.has(new[0], BLOB_DATA)
    assert all(cid in known for cid in new)
    assert known.confirm(new) == set(new)
    assert not any(twin(cid) in known for cid in new)
    cache.add_pack(new_pack_id(), entries(new), via="local")
    known.indexed(cid for cid in new)
    assert not known.unindexed  # the exact copies are gone once SQLite holds them
    assert all(cid in known for cid in new)
    assert known.confirm(new) == set(new)
    assert not any(twin(cid) in known for cid in new)


def records(values: list[int]) -> bytes:
    return b"".join(v.to_bytes(PREFIX_BYTES, "big") for v in values)


def test_prefix_set_matches_a_set_of_ints() -> None:
    rng = random.Random(5)
    # Crowd a few buckets so that inserts land at the front, middle and end of sorted keys, and
    # leave the first and last buckets and a run in between empty.
    values = [rng.randrange(1 << 40, 1 << 47) for _ in range(20000)]
    values += [(7 << 32) | rng.randrange(1 << 32) for _ in range(3000)]
    values += [(0xFFFE << 32) | k for k in (0, 1, 5, 0xFFFFFFFF)]
    loaded = sorted(values[:10000] + values[-4:])
    ps = PrefixSet()
    # In batches like SQLite's: one boundary inside a bucket, duplicates across a boundary.
    cut = next(i for i in range(5000, len(loaded)) if loaded[i] >> 32 == loaded[i - 1] >> 32)
    ps.load_sorted([records(loaded[:cut]), b"", records(loaded[cut - 2:])])
    for v in values[10000:]:
        ps.add(v)
    truth = set(values)
    assert all(v in ps for v in values)
    probes = [rng.randrange(1 << 48) for _ in range(20000)] + [v ^ 1 for v in values]
    probes += [(s << 32) | k for s in (0, 1, 7, 0xFFFE, 0xFFFF) for k in (0, 2, 0xFFFFFFFF)]
    assert [p in ps for p in probes] == [p in truth for p in probes]
    assert ps.nbytes() < 5 * len(truth)


def test_prefix_is_the_leading_bytes_big_endian() -> None:
    cid = bytes(range(32))
    assert prefix(cid) == int.from_bytes(cid[:PREFIX_BYTES], "big")
    assert prefix(twin(cid)) == prefix(cid)


def test_readers_racing_the_writer_and_the_uploader(cache: IndexCache) -> None:
    """Two readers ask while the writer adds and an uploader indexes in batches: an id, once
    added, is found at every later moment; an absent id is never reported."""
    stored = [os.urandom(32) for _ in range(2000)]
    cache.add_pack(new_pack_id(), entries(stored), via="local")
    known = KnownIds(cache)
    new = [os.urandom(32) for _ in range(6000)]
    absent = [twin(cid) for cid in stored[:500]] + [os.urandom(32) for _ in range(500)]
    added = 0  # new[:added] are added (writer thread bumps it after add)
    done = threading.Event()
    errors: list[str] = []

    def writer() -> None:
        nonlocal added
        batch: list[bytes] = []
        for cid in new:
            known.add(cid)
            added += 1
            batch.append(cid)
            if len(batch) == 250:  # a "pack": the uploader indexes it
                cache.add_pack(new_pack_id(), entries(batch), via="local")
                known.indexed(batch)
                batch = []
        done.set()

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        while not done.is_set():
            upto = added
            if upto:
                sample = [new[rng.randrange(upto)] for _ in range(20)]
                if known.confirm(sample) != set(sample) or not all(c in known for c in sample):
                    errors.append("an added id was missed")
            probe = rng.sample(absent, 20)
            if known.confirm(probe) or any(c in known for c in probe):
                errors.append("an absent id was reported as stored")
            if not all(c in known for c in rng.sample(stored, 20)):
                errors.append("a stored id was missed")

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:3]
    assert known.confirm(new) == set(new)


def test_a_backup_leaves_no_id_waiting_for_its_pack(tmp_path: Path, fast_kdf: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The uploader reports every pack it indexed: after a backup the exact in-flight ids are
    gone (memory stays at the prefixes) and every chunk written is found."""
    from engine.store import Store
    from tests.fixtures.store import PASSPHRASE, make_image

    made: list[KnownIds] = []
    init = KnownIds.__init__

    def spy(self: KnownIds, cache: IndexCache) -> None:
        init(self, cache)
        made.append(self)

    monkeypatch.setattr(KnownIds, "__init__", spy)
    image = make_image(tmp_path / "v1.img", 3_000_000, seed=4, zero_every=0)
    with Store.init(str(tmp_path / "s"), PASSPHRASE) as store:
        with open(image, "rb") as f:
            store.backup(f)
        written = [row[0] for row in store.cache.all_blobs() if row[1] == BLOB_DATA]
        with open(image, "rb") as f:
            again = store.backup(f)
        first, second = made
        assert len(written) > 10 and first.prefixes.count == len(written)
        assert not first.unindexed and not second.unindexed
        assert all(cid in first for cid in written)
        assert second.prefixes.count == len(written) and again.stored_bytes < 20_000
