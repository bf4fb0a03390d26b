"""Disk full during a backup: a clear error, no temp files, and a store that still checks."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.store import make_image


@pytest.fixture
def small_fs(tmp_path: Path):
    """A real 24 MiB tmpfs (needs root); skipped where mounting is not permitted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
                         capture_output=True)
    if res.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


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
    assert res.stderr.count("\n") == 1
    assert not list(small_fs.iterdir())
