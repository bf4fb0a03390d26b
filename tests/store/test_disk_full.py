"""Disk full during a backup: a clear error, no temp files, and a store that still checks."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.store import fill_file_system, make_image, small_tmpfs


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path, 24) as mnt:
        yield mnt


def test_disk_full_backup(tmp_path: Path, small_fs: Path, store_cli) -> None:
    store = small_fs / "store"
    assert store_cli("init", store=store).code == 0
    small = make_image(tmp_path / "small.img", 1_000_000, seed=1)
    assert store_cli("backup-image", str(small), store=store).code == 0
    big = tmp_path / "big.img"
    big.write_bytes(os.urandom(48 * 1024 * 1024))
    res = store_cli("backup-image", str(big), store=store)
    assert res.code == 1
    assert res.stderr.startswith("strongroom: error: disk full")
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert not [p for p in store.rglob(".tmp-*")]
    assert not list((store / "locks").iterdir())
    assert store_cli("check", store=store).code == 0
    snaps = json.loads(store_cli("--json", "snapshots", store=store).out)
    assert len(snaps) == 1
    out = tmp_path / "small.out"
    assert store_cli("restore-image", "latest", str(out), store=store).code == 0
    assert out.read_bytes() == small.read_bytes()


def test_disk_full_restore_leaves_nothing(tmp_path: Path, small_fs: Path, store_dir: Path,
                                          store_cli) -> None:
    big = tmp_path / "big.img"
    big.write_bytes(os.urandom(40 * 1024 * 1024))
    assert store_cli("backup-image", str(big)).code == 0
    res = store_cli("restore-image", "latest", str(small_fs / "big.img"))
    assert res.code == 1 and "disk full" in res.stderr
    # which snapshot `latest` named, then the error on one line
    said, error = res.stderr.splitlines()
    assert said.startswith("strongroom: snapshot ") and error.startswith("strongroom: error: ")
    assert not list(small_fs.iterdir())


def test_a_full_disk_under_the_cache_does_not_block_a_restore(
        tmp_path: Path, small_fs: Path, store_dir: Path, store_cli) -> None:
    image = make_image(tmp_path / "c.img", 2_000_000, seed=5, zero_every=0)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    cache = small_fs / "cache"
    cache.mkdir()
    filler = small_fs / "filler"
    fill_file_system(filler, b"\0")  # fill the file system to the last block
    env = {"XDG_CACHE_HOME": str(cache), "STRONGROOM_NO_DAEMON": "1"}
    out = tmp_path / "c.out"
    res = store_cli("restore-image", snap, str(out), env=env)
    assert res.code == 0, res.stderr
    assert out.read_bytes() == image.read_bytes()
    assert str(cache / "strongroom") in res.stderr and "Traceback" not in res.stderr


def test_a_cache_that_fails_to_write_midway_gives_way_to_one_in_memory(
        tmp_path: Path, store_dir: Path, store_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from engine.store import Store
    from engine.store.index import IndexCache
    from tests.fixtures.store import PASSPHRASE

    image = make_image(tmp_path / "m.img", 300_000, seed=6)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    real_sync = IndexCache.sync

    def sync(self, *args, **kwargs):
        if not self.memory:
            raise sqlite3.OperationalError("disk I/O error")
        return real_sync(self, *args, **kwargs)

    monkeypatch.setattr(IndexCache, "sync", sync)
    with Store.open(str(store_dir), PASSPHRASE) as store:
        out = tmp_path / "m.out"
        result = store.restore(snap, out)
        assert out.read_bytes() == image.read_bytes()
        assert store.cache.memory
        [warning] = result.warnings
        assert "disk I/O error" in warning and str(store.cache.path.parent) in warning
        assert "XDG_CACHE_HOME" in warning


def test_a_cache_found_malformed_midway_is_rebuilt_and_the_error_says_so(
        tmp_path: Path, store_dir: Path, store_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from engine.errors import OperationError
    from engine.store import Store
    from engine.store.index import IndexCache
    from tests.fixtures.store import PASSPHRASE

    image = make_image(tmp_path / "r.img", 300_000, seed=7, zero_every=0)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    real = IndexCache.lookup_many
    failed: list[str] = []

    def lookup_many(self, *args, **kwargs):
        if not failed:
            failed.append(str(self.path))
            raise sqlite3.DatabaseError("database disk image is malformed")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(IndexCache, "lookup_many", lookup_many)
    with Store.open(str(store_dir), PASSPHRASE) as store:
        out = tmp_path / "r.out"
        with pytest.raises(OperationError, match="rebuilt it from the store.*run the command "
                                                 "again"):
            store.restore(snap, out)
        assert not list(tmp_path.glob("r.out*"))
        store.restore(snap, out)
        assert out.read_bytes() == image.read_bytes()
