"""`strongroom prune`: space given back, never a needed blob lost — killed at any point, beside a
backup of another process or machine (local and S3 stores), or out of disk space."""
from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store import Store, repository
from tests.fixtures.store import PASSPHRASE, REPO_ROOT, fill_file_system, small_tmpfs

KiB, MiB = 1024, 1024 * 1024


def _rand(n: int, seed: int) -> bytes:
    import random
    return random.Random(seed).randbytes(n)


def _scenario(url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Three snapshots in small packs; the first and the last are forgotten. Left: packs that
    nothing needs (the last one's own data) and packs that are half needed (the first one's
    data, 64 KiB of every 512 KiB replaced in the second). Returns the kept snapshot's image."""
    monkeypatch.setattr(repository, "PACK_TARGET", 256 * KiB)
    v1 = bytearray(_rand(3 * MiB, 1))
    v2 = bytearray(v1)
    for off in range(0, len(v2), 512 * KiB):
        v2[off:off + 64 * KiB] = _rand(64 * KiB, off)
    v3 = _rand(2 * MiB, 3)
    with Store.open(url, PASSPHRASE) as store:
        ids = [store.backup(io.BytesIO(bytes(v)), name="disk").snapshot.id for v in (v1, v2, v3)]
        store.forget([ids[0], ids[2]])
    return {ids[1]: bytes(v2)}


def _store_bytes(root: Path) -> int:
    return sum(p.stat().st_size for d in ("packs", "index") for p in (root / d).rglob("*")
               if p.is_file())


def _sound(url: str, kept: dict[str, bytes], tmp_path: Path) -> None:
    """check --read-data passes and every kept snapshot restores byte for byte."""
    with Store.open(url, PASSPHRASE) as store:
        report = store.check(read_data=True)
        assert report.ok, report.problems
        for snap, data in kept.items():
            out = tmp_path / f"{snap[:8]}.out"
            store.restore(snap, out)
            assert out.read_bytes() == data
            out.unlink()


def _finished(url: str) -> None:
    """Nothing left to do: no garbage, nothing unneeded beyond the 5% a pack may keep."""
    with Store.open(url, PASSPHRASE) as store:
        report = store.prune()
    assert (report.packs_deleted, report.packs_repacked, report.packs_pending) == (0, 0, 0)
    assert report.unused_bytes * 100 <= 5 * (report.needed_bytes + report.unused_bytes)


def test_prune_gives_space_back_and_a_dry_run_changes_nothing(
        tmp_path: Path, store_dir: Path, store_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    kept = _scenario(str(store_dir), monkeypatch)
    files = sorted(p for p in store_dir.rglob("*") if p.is_file() and "locks" not in p.parts)
    before = _store_bytes(store_dir)
    res = store_cli("--json", "prune", "--dry-run")
    assert res.code == 0, res.stderr
    dry = json.loads(res.out)
    assert sorted(p for p in store_dir.rglob("*") if p.is_file()) == files
    assert dry["dry_run"] and dry["packs_deleted"] > dry["packs_repacked"] > 0
    res = store_cli("--json", "prune")
    assert res.code == 0, res.stderr
    done = json.loads(res.out)
    assert done["packs_repacked"] == dry["packs_repacked"]
    assert done["packs_deleted"] == dry["packs_deleted"]
    assert done["bytes_freed"] == before - _store_bytes(store_dir) > 2 * MiB
    assert done["deltas_after"] == 1 < done["deltas_before"]
    assert not list((store_dir / "garbage").iterdir())
    # the ideal: what the kept snapshot needs, within the 5% a pack may keep unneeded
    assert _store_bytes(store_dir) < done["needed_bytes"] * 1.07
    _sound(str(store_dir), kept, tmp_path)
    _finished(str(store_dir))
    res = store_cli("prune")
    assert res.code == 0 and "deleted 0 packs" in res.out


def test_max_unused_decides_what_is_repacked(tmp_path: Path, store_dir: Path, store_cli,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    kept = _scenario(str(store_dir), monkeypatch)
    res = store_cli("--json", "prune", "--max-unused", "unlimited")
    doc = json.loads(res.out)
    assert doc["packs_repacked"] == 0 and doc["packs_deleted"] > 0  # unneeded packs still go
    assert store_cli("prune", "--max-unused", "101").code == 2
    assert store_cli("prune", "--max-unused", "lots").code == 2
    doc = json.loads(store_cli("--json", "prune", "--max-unused", "10%").out)
    assert doc["packs_repacked"] > 0
    _sound(str(store_dir), kept, tmp_path)


# A prune in its own process that SIGKILLs itself right after the n-th store operation of a
# kind (put or delete) on names with a prefix: a real crash, no handler or finally runs.
_KILLED_PRUNE = """
import os, signal, sys
from engine.store import Store, repository
from engine.store.backends import local
repository.PACK_TARGET = 256 * 1024
url, op, prefix, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
real = getattr(local.LocalBackend, op)
seen = 0
def patched(self, name, *args, **kwargs):
    global seen
    result = real(self, name, *args, **kwargs)
    if name.startswith(prefix):
        seen += 1
        if seen == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return result
setattr(local.LocalBackend, op, patched)
with Store.open(url, sys.argv[5]) as store:
    store.prune()
print("not killed")
"""

KILL_POINTS = [
    ("put", "garbage/", 1),   # round 1's garbage list written, its locks not yet
    ("put", "garbage/", 2),   # ... with its locks: nothing deleted yet
    ("put", "index/", 1),     # the consolidated index written, the old deltas still there
    ("delete", "index/", 1),  # one old delta deleted
    ("delete", "packs/", 1),  # one garbage pack deleted, the others not
    ("delete", "garbage/", 1),  # round 1 done, the repack not begun
    ("put", "packs/", 2),     # mid-repack: two new packs written
    ("put", "garbage/", 3),   # the repacked packs listed as garbage
    ("delete", "packs/", 12),  # round 2: the repacked packs half deleted
]


@pytest.mark.parametrize("op,prefix,nth", KILL_POINTS, ids=[f"{o}-{p[:-1]}-{n}"
                                                            for o, p, n in KILL_POINTS])
def test_sigkill_at_any_point_loses_nothing_and_the_next_prune_finishes(
        op: str, prefix: str, nth: int, tmp_path: Path, store_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    kept = _scenario(str(store_dir), monkeypatch)
    proc = subprocess.run([sys.executable, "-c", _KILLED_PRUNE, str(store_dir), op, prefix,
                           str(nth), PASSPHRASE], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, (proc.stdout, proc.stderr)
    _sound(str(store_dir), kept, tmp_path)
    with Store.open(str(store_dir), PASSPHRASE) as store:
        store.prune()  # finishes the work
    _sound(str(store_dir), kept, tmp_path)
    _finished(str(store_dir))
    assert not list((store_dir / "garbage").iterdir())


# ---------------------------------------------------------------------------------------------
# A backup and a prune at once, from two processes with caches of their own (two machines)

@pytest.fixture(params=["local", "s3"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path, fast_kdf: None,
                 monkeypatch: pytest.MonkeyPatch):
    """(url, env) of an empty store that several processes use: a folder, or a bucket on a
    real S3 server (moto's)."""
    if request.param == "local":
        url, env = str(tmp_path / "store"), {}
    else:
        endpoint = request.getfixturevalue("moto_s3")
        bucket = request.getfixturevalue("moto_bucket")
        url = f"s3://{bucket}/store"
        env = {"STRONGROOM_S3_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": "test",
               "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "fr-par"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
    Store.init(url, PASSPHRASE).close()
    return url, env


def _cache_has_synced(cache_home: Path) -> bool:
    for path in cache_home.glob("strongroom/stores/*.sqlite"):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
                if db.execute("SELECT count(*) FROM deltas").fetchone()[0]:
                    return True
        except sqlite3.Error:
            pass
    return False


def test_a_backup_and_a_prune_at_once_both_end_well(tmp_path: Path, shared_store, store_cli,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url, s3_env = shared_store
    image = _rand(4 * MiB, 7)
    with Store.open(url, PASSPHRASE) as store:
        store.backup(io.BytesIO(_rand(MiB, 8)), name="other")
        old = store.backup(io.BytesIO(image), name="disk").snapshot.id
        store.forget([old])  # its data is garbage now... unless a backup reuses it
    # The backup: another process with a cache of its own (as on another machine), reading
    # its image from a FIFO; it opens the store, syncs its index (the data is live then) and
    # waits for bytes.
    fifo = tmp_path / "image.fifo"
    os.mkfifo(fifo)
    cache_b = tmp_path / "cache-b"
    env = dict(os.environ, STRONGROOM_PASSPHRASE=PASSPHRASE, STRONGROOM_NO_DAEMON="1",
               XDG_CACHE_HOME=str(cache_b), **s3_env)
    backup = subprocess.Popen([sys.executable, "-m", "cli", "--store", url, "--json",
                               "backup-image", str(fifo), "--name", "disk"], env=env,
                              cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    opened: list[int] = []
    opener = threading.Thread(target=lambda: opened.append(os.open(fifo, os.O_WRONLY)),
                              daemon=True)
    opener.start()
    opener.join(120)
    assert opened, "the backup never opened its image"
    deadline = time.monotonic() + 120
    while not _cache_has_synced(cache_b):
        assert time.monotonic() < deadline and backup.poll() is None, backup.stderr
        time.sleep(0.05)
    time.sleep(0.5)  # its known ids are loaded right after the sync
    try:
        # The prune, meanwhile: the old data is garbage, but the backup may use it: it waits.
        res = store_cli("prune", store=url, env={"STRONGROOM_NO_DAEMON": "1"})
        assert res.code == 0, res.stderr
        assert f"wait for pid {backup.pid}" in res.out and "the next prune deletes them" in res.out
        with os.fdopen(opened[0], "wb") as feed:
            feed.write(image)
    finally:
        out, err = backup.communicate(timeout=300)
    assert backup.returncode == 0, err
    new = json.loads(out)["snapshot"]
    # The next prune: the backup has ended and its snapshot needs the old data: recovered.
    res = store_cli("--json", "prune", store=url, env={"STRONGROOM_NO_DAEMON": "1"})
    doc = json.loads(res.out)
    assert doc["packs_recovered"] > 0 and doc["packs_pending"] == 0, doc
    with Store.open(url, PASSPHRASE) as store:
        assert store.resolve(new).stored_bytes < MiB // 2  # it did deduplicate against it
    _sound(url, {new: image}, tmp_path)
    assert store_cli("check", "--read-data", store=url).code == 0


def _lock_file(store: Path, doc: dict) -> Path:
    lock = store / "locks" / os.urandom(16).hex()
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(json.dumps({"host": __import__("socket").gethostname(), "pid": os.getpid(),
                                "time": time.time(), **doc}))
    return lock


def test_prune_locks_exclude_prunes_not_backups(tmp_path: Path, store_dir: Path, store_cli,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    kept = _scenario(str(store_dir), monkeypatch)
    other = _lock_file(store_dir, {"exclusive": True, "prune": True, "version": 2})
    res = store_cli("prune")
    assert res.code == 1 and "in use (a prune lock held by pid" in res.stderr
    image = tmp_path / "b.img"
    image.write_bytes(_rand(300_000, 9))
    assert store_cli("backup-image", str(image)).code == 0  # backups do not wait for a prune
    res = store_cli("key", "passwd", env={"STRONGROOM_NEW_PASSPHRASE": "x"})
    assert res.code == 1 and "prune lock" in res.stderr
    other.unlink()
    assert store_cli("prune").code == 0
    _sound(str(store_dir), kept, tmp_path)


def test_a_strongroom_without_garbage_lists_holds_deletion_back(
        tmp_path: Path, store_dir: Path, store_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup of an older Strongroom (its lock has no version) would deduplicate against
    garbage packs: while one runs, a prune marks but deletes nothing."""
    kept = _scenario(str(store_dir), monkeypatch)
    old = _lock_file(store_dir, {"exclusive": False})
    doc = json.loads(store_cli("--json", "prune").out)
    assert doc["packs_deleted"] == 0 and doc["packs_pending"] > 0
    assert len(doc["waiting_for"]) == 1 and f"pid {os.getpid()}" in doc["waiting_for"][0]
    old.unlink()
    doc = json.loads(store_cli("--json", "prune").out)
    assert doc["packs_deleted"] > 0 and doc["packs_pending"] == 0
    _sound(str(store_dir), kept, tmp_path)
    _finished(str(store_dir))


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path, 16) as mnt:
        yield mnt


def test_disk_full_during_repack_is_clear_and_loses_nothing(
        tmp_path: Path, small_fs: Path, store_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(small_fs / "store")
    assert store_cli("init", store=url).code == 0
    monkeypatch.setattr(repository, "PACK_TARGET", 256 * KiB)
    v1 = bytearray(_rand(6 * MiB, 11))
    v2 = bytearray(v1)
    for off in range(0, len(v2), 512 * KiB):  # every pack of v1 ends up partly unneeded
        v2[off:off + 64 * KiB] = _rand(64 * KiB, off)
    with Store.open(url, PASSPHRASE) as store:
        first = store.backup(io.BytesIO(bytes(v1)), name="disk").snapshot.id
        second = store.backup(io.BytesIO(bytes(v2)), name="disk").snapshot.id
        store.forget([first])
    # fill the file system but for 1 MiB: room for locks, lists and a few packs, not for the
    # repack's 5 MiB of new packs
    filler = small_fs / "filler"
    fill_file_system(filler, b"\1")
    os.truncate(filler, filler.stat().st_size - MiB)
    res = store_cli("prune", store=url)
    assert res.code == 1, res.stderr
    assert res.stderr.startswith("strongroom: error: disk full while pruning")
    assert "(repacking)" in res.stderr
    assert "nothing that snapshots need was lost" in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert not list(small_fs.rglob(".tmp-*"))
    filler.unlink()
    _sound(url, {second: bytes(v2)}, tmp_path)
    assert store_cli("prune", store=url).code == 0  # with room again, it finishes
    _sound(url, {second: bytes(v2)}, tmp_path)
    _finished(url)


def test_check_beside_a_prune_that_deletes_garbage_finds_no_problem(
        tmp_path: Path, store_dir: Path, store_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    kept = _scenario(str(store_dir), monkeypatch)
    old = _lock_file(store_dir, {"exclusive": False})  # holds deletion back: packs stay garbage
    assert json.loads(store_cli("--json", "prune").out)["packs_pending"] > 0
    old.unlink()
    with Store.open(str(store_dir), PASSPHRASE) as store:
        real_list = store.backend.list
        calls: list[str] = []
        pruned: list[int] = []

        def listing(prefix: str):  # another prune deletes the garbage right after check listed
            names = list(real_list(prefix))
            if prefix == "packs/":
                calls.append(prefix)
                # the cache's sync, the sync of check's own index (from the store), then the
                # listing of check itself
                if len(calls) == 3:
                    with Store.open(str(store_dir), PASSPHRASE) as other:
                        pruned.append(other.prune().packs_deleted)
            return iter(names)

        monkeypatch.setattr(store.backend, "list", listing)
        report = store.check(read_data=True)
        assert pruned and pruned[0] > 0
        assert report.ok, report.problems
    _sound(str(store_dir), kept, tmp_path)
