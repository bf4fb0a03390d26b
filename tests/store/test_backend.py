"""LocalBackend's ranged reads: ``get`` and the buffer-filling ``read_into`` restores use."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import OperationError
from engine.store.backends import LocalBackend, NotFound
from engine.store.backends.base import PageBuffer


def test_read_into_matches_get(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "store")
    backend.create()
    data = os.urandom(3 * 1024 * 1024 + 17)
    backend.put("packs/ab/abcd", data)
    buf = bytearray(1024 * 1024 + 5)
    backend.read_into("packs/ab/abcd", 123_457, memoryview(buf))
    assert bytes(buf) == data[123_457:123_457 + len(buf)]
    assert backend.get("packs/ab/abcd", 123_457, len(buf)) == bytes(buf)


def test_read_into_refuses_short_and_missing_files(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "store")
    backend.create()
    backend.put("packs/ab/abcd", b"x" * 1000)
    with pytest.raises(OperationError, match="shorter than its index says"):
        backend.read_into("packs/ab/abcd", 900, memoryview(bytearray(200)))
    with pytest.raises(NotFound):
        backend.read_into("packs/ab/gone", 0, memoryview(bytearray(10)))


def test_page_buffer_extend_writes_in_place_and_grows_keeping_what_it_held() -> None:
    buf = PageBuffer(4096)
    buf.append(b"head")
    with buf.extend(3) as out:
        out[:] = b"abc"
    big = os.urandom(3 * 4096)  # past the capacity: the buffer moves, its bytes with it
    with buf.extend(len(big)) as out:
        out[:] = big
    assert bytes(buf.view()) == b"headabc" + big
    assert buf.size == 7 + len(big)


def test_sealed_in_place_blobs_read_back(tmp_path: Path) -> None:
    """PackWriter.seal encrypts into the pack buffer: what BlobReader gets back must match,
    across a pack that is closed and put mid-way."""
    import blake3
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from engine.store.crypto import FLAG_RAW, Keys, Sealer
    from engine.store.index import IndexCache
    from engine.store.pack import BLOB_DATA, blob_ad
    from engine.store.repository import BlobReader, PackWriter

    backend = LocalBackend(tmp_path / "store")
    backend.create()
    keys = Keys.from_master(os.urandom(32))
    cache = IndexCache("test", tmp_path / "cache.sqlite")
    writer = PackWriter(backend, Sealer(keys.data), cache, pack_target=256 * 1024)
    aead = AESGCM(keys.data)
    blobs = [os.urandom(100_000 + i) for i in range(7)]  # three blobs a pack: three packs
    ids = [blake3.blake3(b, key=keys.chunk_id).digest() for b in blobs]
    for cid, blob in zip(ids, blobs):
        writer.seal(aead, BLOB_DATA, cid, FLAG_RAW, len(blob), os.urandom(12),
                    memoryview(blob), blob_ad(BLOB_DATA, cid))
    writer.finish()
    reader = BlobReader(backend, keys, cache)
    assert [reader.read_blob(cid, BLOB_DATA) for cid in ids] == blobs
    assert len(writer.packs) == 3


def test_finish_unmaps_every_pack_buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The buffers go while the last uploads are written, not when the writer is dropped (the
    end of a backup waited ~20 ms for that on this VM)."""
    from engine.store import repository
    from engine.store.crypto import FLAG_RAW, Keys, Sealer
    from engine.store.index import IndexCache
    from engine.store.pack import BLOB_DATA

    made: list[PageBuffer] = []

    class Recorded(PageBuffer):
        def __init__(self, capacity: int) -> None:
            super().__init__(capacity)
            made.append(self)

    monkeypatch.setattr(repository, "PageBuffer", Recorded)
    backend = LocalBackend(tmp_path / "store")
    backend.create()
    keys = Keys.from_master(os.urandom(32))
    writer = repository.PackWriter(backend, Sealer(keys.data), IndexCache("t", tmp_path / "c"),
                                   pack_target=64 * 1024)
    for i in range(20):
        writer.add(BLOB_DATA, os.urandom(32), FLAG_RAW, 30_000, os.urandom(30_016))
    writer.finish()
    assert len(made) >= 2 and all(buf.mem.closed for buf in made)
    assert len(writer.packs) == 7  # three blobs a pack
