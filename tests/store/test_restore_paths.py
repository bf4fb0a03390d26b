"""Restores after issue 15: pack-order writes for version-2 snapshots (digest over the chunk
list), bounded read-ahead, old (version-1, whole-image digest) snapshots, and --sha256."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import blake3
import pytest

from engine.store import prefetch
from engine.store.restorer import restore_to_path
from engine.store.snapshot import (DIGEST_CHUNKS, DIGEST_IMAGE, Manifest, seal_manifest,
                                   snapshot_name)
from engine.store.store import Store
from tests.fixtures.store import PASSPHRASE, make_image


def _image_with_repeats(path: Path, seed: int) -> Path:
    """Random and text regions, zero runs, and the same 1 MiB three times (dedup within the
    image: one blob written at several offsets)."""
    make_image(path, 5_000_000, seed=seed)
    data = bytearray(path.read_bytes())
    block = data[1_000_000:2_000_000]
    data += block + bytes(300_000) + block + b"tail"
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def store(tmp_path: Path, fast_kdf: None):
    url = str(tmp_path / "store")
    Store.init(url, PASSPHRASE).close()
    with Store.open(url, PASSPHRASE) as s:
        yield s


def _backup(store: Store, image: Path) -> str:
    with open(image, "rb") as f:
        return store.backup(f, name="img").snapshot.id


def test_new_snapshots_carry_a_chunk_list_digest_and_restore_identical_bytes(
        tmp_path: Path, store: Store) -> None:
    image = _image_with_repeats(tmp_path / "a.img", seed=3)
    snap = _backup(store, image)
    manifest = store._manifest(snap)
    assert manifest.info.digest.startswith(DIGEST_CHUNKS)
    assert json.loads(manifest.encode())["version"] == 2
    out = tmp_path / "out.img"
    stats = prefetch.FetchStats()
    with store._lock(exclusive=False):
        restore_to_path(store._reader(), manifest, out, None, None, stats=stats)
    assert out.read_bytes() == image.read_bytes()
    assert stats.runs > 1  # read in pack order, in parallel runs
    # never more than one run per thread in memory at once
    assert 0 < stats.peak_bytes <= prefetch.THREADS * prefetch.RUN_MAX_LOCAL


def test_stream_reads_hold_one_blob_per_thread(tmp_path: Path, store: Store,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The S3 way (ranged GETs read blob by blob) on any backend that can open a range:
    what the threads hold at once is a block and a blob each, not the packs' spans."""
    image = _image_with_repeats(tmp_path / "a.img", seed=4)
    snap = _backup(store, image)
    backend = store.backend

    def open_range(name: str, offset: int, length: int):
        import io
        return io.BytesIO(backend.get(name, offset, length))

    reader = store._reader()
    monkeypatch.setattr(type(backend), "open_range", staticmethod(open_range), raising=False)
    monkeypatch.setattr(type(reader), "local", property(lambda self: False))
    monkeypatch.setattr(prefetch, "STREAM_BLOCK", 64 * 1024)  # small, so runs are larger
    # few threads, so that the bound sits well below what whole runs would hold: the image's
    # compressed size depends on where the store's keyed chunker cuts it
    monkeypatch.setattr(prefetch, "THREADS_STREAM", 2)
    stats = prefetch.FetchStats()
    out = tmp_path / "out.img"
    with store._lock(exclusive=False):
        restore_to_path(reader, store._manifest(snap), out, None, None, stats=stats)
    assert out.read_bytes() == image.read_bytes()
    biggest = 256 * 1024 + 64  # the chunker's max chunk, sealed
    bound = prefetch.THREADS_STREAM * (64 * 1024 + biggest)
    assert 0 < stats.peak_bytes <= bound
    ids, lengths = reader.read_tree(store._manifest(snap).trees[0])
    runs = prefetch.plan(reader, ids, lengths, 0)
    assert sum(r.end - r.start for r in runs) > bound  # holding whole runs would fail above
    assert stats.requests <= stats.runs  # one GET per run, runs of whole packs


def test_a_version_1_snapshot_restores_with_its_whole_image_digest(tmp_path: Path,
                                                                   store: Store,
                                                                   store_cli) -> None:
    """A snapshot as Strongroom wrote them before (manifest version 1, BLAKE3 of the whole
    image) restores, and its digest is still checked: a wrong one fails."""
    image = make_image(tmp_path / "a.img", 3_000_000, seed=5)
    new = store._manifest(_backup(store, image))
    old_ids = {}
    for label, digest in (("good", blake3.blake3(image.read_bytes()).hexdigest()),
                          ("bad", "00" * 32)):
        info = type(new.info)(**{**new.info.to_dict(), "id": "", "digest": DIGEST_IMAGE + digest})
        old = Manifest(info, new.trees, new.chunker)
        assert json.loads(old.encode())["version"] == 1
        snap_id, sealed = seal_manifest(store.sealer, store.keys.chunk_id, old)
        store.backend.put(snapshot_name(snap_id), sealed)
        old_ids[label] = snap_id
    out = tmp_path / "old.img"
    res = store_cli("restore-image", old_ids["good"][:12], str(out), store=tmp_path / "store")
    assert res.code == 0, res.stderr
    assert out.read_bytes() == image.read_bytes()
    bad = store_cli("restore-image", old_ids["bad"][:12], str(tmp_path / "bad.img"),
                    store=tmp_path / "store")
    assert bad.code == 1
    assert "does not match its digest" in bad.stderr and len(error_lines(bad.stderr)) == 1
    assert not (tmp_path / "bad.img").exists()


def test_a_wrong_chunk_list_digest_fails_the_restore(tmp_path: Path, store: Store,
                                                     store_cli) -> None:
    image = make_image(tmp_path / "a.img", 2_000_000, seed=6)
    new = store._manifest(_backup(store, image))
    info = type(new.info)(**{**new.info.to_dict(), "id": "", "digest": DIGEST_CHUNKS + "11" * 32})
    snap_id, sealed = seal_manifest(store.sealer, store.keys.chunk_id,
                                    Manifest(info, new.trees, new.chunker))
    store.backend.put(snapshot_name(snap_id), sealed)
    res = store_cli("restore-image", snap_id[:12], str(tmp_path / "out.img"),
                    store=tmp_path / "store")
    assert res.code == 1 and "does not match its digest" in res.stderr
    assert not list(tmp_path.glob("out.img*"))  # nor its temporary file


def test_a_damaged_pack_is_one_line_and_leaves_no_file(tmp_path: Path, store: Store,
                                                       store_cli) -> None:
    image = make_image(tmp_path / "a.img", 3_000_000, seed=7)
    snap = _backup(store, image)
    packs = sorted((tmp_path / "store" / "packs").rglob("*"), key=lambda p: p.stat().st_size)
    pack = [p for p in packs if p.is_file()][-1]  # the data pack
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 3] ^= 0x40
    pack.chmod(0o644)
    pack.write_bytes(bytes(raw))
    res = store_cli("restore-image", snap[:12], str(tmp_path / "out.img"),
                    store=tmp_path / "store")
    assert res.code == 1
    assert len(error_lines(res.stderr)) == 1, res.stderr
    assert "is damaged" in res.stderr and "check --read-data" in res.stderr
    assert not list(tmp_path.glob("out.img*"))


def test_sha256_on_request(tmp_path: Path, store_dir: Path, store_cli) -> None:
    image = _image_with_repeats(tmp_path / "a.img", seed=8)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    want = hashlib.sha256(image.read_bytes()).hexdigest()
    out = tmp_path / "out.img"
    res = store_cli("restore-image", snap[:12], str(out), "--sha256")
    assert res.code == 0, res.stderr
    assert res.out.strip() == f"{want}  {out}"  # sha256sum's format
    assert out.read_bytes() == image.read_bytes()
    as_json = store_cli("--json", "restore-image", snap[:12], str(out), "--force", "--sha256")
    assert json.loads(as_json.out)["sha256"] == want
    piped = store_cli("restore-image", snap[:12], "-", "--sha256")
    assert piped.code == 0 and piped.stdout == image.read_bytes()
    assert f"{want}  -" in piped.stderr


def test_runs_are_small_on_local_stores_and_whole_pack_spans_on_s3(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    image = make_image(tmp_path / "a.img", 4_000_000, seed=9, zero_every=0)
    snap = _backup(store, image)
    reader = store._reader()
    ids, lengths = reader.read_tree(store._manifest(snap).trees[0])
    local = prefetch.plan(reader, ids, lengths, 0)
    assert len(local) > 1 and all(r.end - r.start <= prefetch.RUN_MAX_LOCAL for r in local)
    monkeypatch.setattr(type(reader), "local", property(lambda self: False))
    monkeypatch.setattr(type(store.backend), "open_range", lambda *a: None, raising=False)
    streamed = prefetch.plan(reader, ids, lengths, 0)
    assert len(streamed) == len({r.pack for r in local})  # one GET per pack
    assert sum(len(r.blobs) for r in streamed) == sum(len(r.blobs) for r in local)


def test_a_cancelled_restore_leaves_no_file(tmp_path: Path, store: Store) -> None:
    import threading

    from engine.store.repository import Cancelled

    image = make_image(tmp_path / "a.img", 3_000_000, seed=10)
    snap = _backup(store, image)
    cancel = threading.Event()
    cancel.set()
    with store._lock(exclusive=False), pytest.raises(Cancelled):
        restore_to_path(store._reader(), store._manifest(snap), tmp_path / "out.img", None,
                        cancel)
    assert not list(tmp_path.glob("out.img*"))


def error_lines(stderr: str) -> list[str]:
    """The lines that report a failure: a command first says which snapshot a name resolved to."""
    return [line for line in stderr.splitlines() if not line.startswith("strongroom: snapshot ")]
