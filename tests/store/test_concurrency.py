"""Locks: concurrent backups share the store; exclusive maintenance waits for nobody else."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.store import PASSPHRASE, REPO_ROOT, make_image


def test_two_backups_at_once(tmp_path: Path, store_dir: Path, store_cli) -> None:
    images = [make_image(tmp_path / f"{i}.img", 4_000_000, seed=20 + i) for i in range(2)]
    env = dict(os.environ, STRONGROOM_PASSPHRASE=PASSPHRASE)
    procs = [subprocess.Popen([sys.executable, "-m", "cli", "--store", str(store_dir),
                               "--json", "backup-image", str(img)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, cwd=REPO_ROOT) for img in images]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    ids = [json.loads(out)["snapshot"] for out, _ in results]
    for snap, img in zip(ids, images):
        out = tmp_path / "out.img"
        assert store_cli("restore-image", snap, str(out), "--force").code == 0
        assert out.read_bytes() == img.read_bytes()
    assert store_cli("check", "--read-data").code == 0
    assert not list((store_dir / "locks").iterdir())


def _write_lock(store: Path, pid: int, exclusive: bool, age: float = 0) -> Path:
    lock = store / "locks" / ("ab" * 16)
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(json.dumps({"exclusive": exclusive, "host": socket.gethostname(),
                                "pid": pid, "time": time.time() - age}))
    return lock


def test_exclusive_lock_conflicts_and_stale_locks(tmp_path: Path, store_dir: Path,
                                                  store_cli) -> None:
    new = {"STRONGROOM_NEW_PASSPHRASE": "other"}
    lock = _write_lock(store_dir, os.getpid(), exclusive=False)  # a live backup
    res = store_cli("key", "passwd", env=new)
    assert res.code == 1 and "in use" in res.stderr
    assert store_cli("snapshots").code == 0  # the old passphrase still works
    image = make_image(tmp_path / "a.img", 300_000)
    assert store_cli("backup-image", str(image)).code == 0  # shared + shared is fine
    lock.unlink()
    lock = _write_lock(store_dir, os.getpid(), exclusive=True)
    res = store_cli("backup-image", str(image))
    assert res.code == 1 and "exclusive lock" in res.stderr
    lock.unlink()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(store_dir, dead.pid, exclusive=True)  # its process is gone: stale
    assert store_cli("key", "passwd", env=new).code == 0
    assert not list((store_dir / "locks").iterdir())
    assert store_cli("snapshots", passphrase="other").code == 0
