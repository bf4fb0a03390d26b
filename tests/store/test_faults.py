"""Bad input and faults: wrong passphrase, damage, a killed backup, missing or foreign stores."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.store import PASSPHRASE, REPO_ROOT, make_image


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_wrong_passphrase_exits_2_and_changes_nothing(tmp_path: Path, store_dir: Path,
                                                      store_cli) -> None:
    image = make_image(tmp_path / "a.img", 500_000)
    assert store_cli("backup-image", str(image)).code == 0
    before = _tree_digest(store_dir)
    for args in (["snapshots"], ["backup-image", str(image)], ["check"],
                 ["restore-image", "latest", str(tmp_path / "x.img")]):
        res = store_cli(*args, passphrase="not the passphrase")
        assert res.code == 2, (args, res.stderr)
        assert res.stderr.startswith("strongroom: error: wrong passphrase")
        assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1
    assert _tree_digest(store_dir) == before
    assert not (tmp_path / "x.img").exists()


def test_key_passwd_keeps_data(tmp_path: Path, store_dir: Path, store_cli) -> None:
    image = make_image(tmp_path / "a.img", 700_000, seed=2)
    assert store_cli("backup-image", str(image)).code == 0
    packs_before = _tree_digest(store_dir / "packs")
    res = store_cli("key", "passwd", env={"STRONGROOM_NEW_PASSPHRASE": "new secret"})
    assert res.code == 0, res.stderr
    assert store_cli("snapshots").code == 2  # the old passphrase no longer opens it
    out = tmp_path / "out.img"
    assert store_cli("restore-image", "latest", str(out), passphrase="new secret").code == 0
    assert out.read_bytes() == image.read_bytes()
    assert _tree_digest(store_dir / "packs") == packs_before
    assert "new secret" not in (store_dir / "keys" / "default").read_text()


def _flip_byte_in_largest_pack(store: Path) -> None:
    pack = max((p for p in (store / "packs").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[len(data) // 3] ^= 0x40
    pack.write_bytes(bytes(data))


def test_flipped_byte_is_found_and_never_restored(tmp_path: Path, store_dir: Path,
                                                  store_cli) -> None:
    image = make_image(tmp_path / "a.img", 3_000_000, seed=4, zero_every=0)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    assert store_cli("check", "--read-data").code == 0
    _flip_byte_in_largest_pack(store_dir)
    res = store_cli("--json", "check", "--read-data")
    assert res.code == 1
    report = json.loads(res.out)
    assert report["ok"] is False and report["damaged_snapshots"] == [snap]
    text = store_cli("check", "--read-data")
    assert text.code == 1 and snap[:12] in text.stderr
    out = tmp_path / "out.img"
    restored = store_cli("restore-image", snap, str(out))
    assert restored.code == 1 and "damaged" in restored.stderr
    assert not out.exists() and not list(tmp_path.glob("out.img*"))
    streamed = store_cli("restore-image", snap, "-")
    assert streamed.code == 1
    assert len(streamed.stdout) < len(image.read_bytes())


def test_killed_backup_leaves_a_sound_store(tmp_path: Path, store_dir: Path,
                                            store_cli) -> None:
    first = make_image(tmp_path / "first.img", 1_000_000, seed=9)
    assert store_cli("backup-image", str(first)).code == 0
    data = os.urandom(80 * 1024 * 1024)  # random: three packs' worth
    env = dict(os.environ, STRONGROOM_PASSPHRASE=PASSPHRASE)
    proc = subprocess.Popen([sys.executable, "-m", "cli", "--store", str(store_dir),
                             "backup-image", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=REPO_ROOT)
    assert proc.stdin is not None
    proc.stdin.write(data[:75 * 1024 * 1024])  # then keep it waiting for more
    proc.stdin.flush()
    def packs() -> list[Path]:
        return [p for p in (store_dir / "packs").rglob("*")
                if p.is_file() and not p.name.startswith(".tmp-")]

    # the first backup's pack and two full packs of this one; a loaded machine (the suite
    # shares its cores) may need minutes to pack 64 MiB, and waiting costs nothing when it's fast
    deadline = time.monotonic() + 180
    while len(packs()) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the backup ended before it was killed"
    assert len(packs()) >= 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdin.close()
    assert store_cli("check").code == 0
    assert len(json.loads(store_cli("--json", "snapshots").out)) == 1
    out = tmp_path / "first.out"
    assert store_cli("restore-image", "latest", str(out)).code == 0
    assert out.read_bytes() == first.read_bytes()
    again = store_cli("--json", "backup-image", "-", stdin=data)
    assert again.code == 0, again.stderr
    # what the killed backup had packed is reused: at least two packs' worth not stored again
    assert json.loads(again.out)["stored_bytes"] < len(data) - 56 * 1024 * 1024
    res = store_cli("restore-image", "latest", "-")
    assert res.code == 0 and res.stdout == data
    assert store_cli("check", "--read-data").code == 0


def test_missing_foreign_and_newer_stores(tmp_path: Path, store_cli) -> None:
    missing = store_cli("snapshots", store=tmp_path / "nowhere")
    assert missing.code == 2 and "no store at" in missing.stderr and "init" in missing.stderr
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("hello")
    res = store_cli("snapshots", store=foreign)
    assert res.code == 2 and "not a strongroom store" in res.stderr
    res = store_cli("init", store=foreign)
    assert res.code == 2 and "not empty" in res.stderr
    assert (foreign / "notes.txt").read_text() == "hello"
    newer = tmp_path / "newer"
    assert store_cli("init", store=newer).code == 0
    assert store_cli("init", store=newer).code == 2
    config = json.loads((newer / "config").read_text())
    config["strongroom_store"] = 99
    (newer / "config").write_text(json.dumps(config))
    res = store_cli("snapshots", store=newer)
    assert res.code == 2 and "newer" in res.stderr and "upgrade" in res.stderr
    for res in (missing, foreign and res):
        assert "Traceback" not in res.stderr


def test_snapshot_refs(tmp_path: Path, store_dir: Path, store_cli) -> None:
    ids = []
    for seed in (1, 2):
        image = make_image(tmp_path / f"{seed}.img", 200_000, seed=seed)
        ids.append(json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"])
    out = tmp_path / "o.img"
    assert store_cli("restore-image", ids[0][:6], str(out)).code == 0
    assert out.read_bytes() == (tmp_path / "1.img").read_bytes()
    kept = store_cli("restore-image", "latest", str(out))
    assert kept.code == 2 and "--force" in kept.stderr  # never replaced without asking
    assert out.read_bytes() == (tmp_path / "1.img").read_bytes()
    assert store_cli("restore-image", "latest", str(out), "--force").code == 0
    assert out.read_bytes() == (tmp_path / "2.img").read_bytes()
    short = store_cli("restore-image", ids[0][:5], str(out))
    assert short.code == 2 and "at least 6" in short.stderr
    unknown = store_cli("restore-image", "ffffff0000", str(out))
    assert unknown.code == 2 and "no snapshot ffffff0000" in unknown.stderr


def test_ambiguous_prefix_is_refused() -> None:
    from engine.errors import UsageError
    from engine.store.snapshot import SnapshotInfo
    from engine.store.store import match_ref

    infos = [SnapshotInfo(id=i, time=t, name="", bytes=0, stored_bytes=0, seconds=0)
             for i, t in (("abcdef01" + "0" * 56, "1"), ("abcdef02" + "0" * 56, "2"))]
    with pytest.raises(UsageError, match="ambiguous"):
        match_ref("abcdef", infos, "here")
    assert match_ref("abcdef02", infos, "here") is infos[1]
    assert match_ref("LATEST", infos, "here") is infos[1]


def test_missing_pack_and_leftover_temp_files(tmp_path: Path, store_dir: Path,
                                              store_cli) -> None:
    keep = make_image(tmp_path / "keep.img", 300_000, seed=30, zero_every=0)
    keep_id = json.loads(store_cli("--json", "backup-image", str(keep)).out)["snapshot"]
    packs_before = {p for p in (store_dir / "packs").rglob("*") if p.is_file()}
    lose = make_image(tmp_path / "lose.img", 400_000, seed=31, zero_every=0)
    lose_id = json.loads(store_cli("--json", "backup-image", str(lose)).out)["snapshot"]
    new_packs = {p for p in (store_dir / "packs").rglob("*") if p.is_file()} - packs_before
    assert new_packs
    # a writer that died mid-write leaves a temp file: readers ignore it
    (store_dir / "packs" / ".tmp-deadbeef-0000").write_bytes(b"partial")
    assert store_cli("check", "--read-data").code == 0
    for pack in new_packs:
        pack.unlink()
    report = store_cli("--json", "check")
    assert report.code == 1
    assert json.loads(report.out)["damaged_snapshots"] == [lose_id]
    res = store_cli("restore-image", lose_id, str(tmp_path / "lose.out"))
    assert res.code == 1 and "missing" in res.stderr
    assert not list(tmp_path.glob("lose.out*"))
    out = tmp_path / "keep.out"
    assert store_cli("restore-image", keep_id, str(out)).code == 0
    assert out.read_bytes() == keep.read_bytes()
    # backing the same data up again stores the lost chunks anew: the old snapshot heals
    assert store_cli("backup-image", str(lose)).code == 0
    out = tmp_path / "lose.out"
    assert store_cli("restore-image", lose_id, str(out)).code == 0
    assert out.read_bytes() == lose.read_bytes()


def test_damaged_manifest_is_reported_by_check(tmp_path: Path, store_dir: Path,
                                               store_cli) -> None:
    image = make_image(tmp_path / "m.img", 200_000, seed=40)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    assert [s["id"] for s in json.loads(store_cli("--json", "snapshots").out)] == [snap]
    manifest = store_dir / "snapshots" / snap
    data = bytearray(manifest.read_bytes())
    data[20] ^= 1
    manifest.write_bytes(bytes(data))
    # listing uses the cached copy (snapshot files are immutable); check reads the store
    assert [s["id"] for s in json.loads(store_cli("--json", "snapshots").out)] == [snap]
    report = store_cli("--json", "check")
    assert report.code == 1
    assert json.loads(report.out)["damaged_snapshots"] == [snap]


def test_a_restore_to_stdout_whose_reader_goes_away_fails(tmp_path: Path, store_dir: Path,
                                                         store_cli) -> None:
    image = make_image(tmp_path / "big.img", 8_000_000, seed=7)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    env = dict(os.environ, STRONGROOM_PASSPHRASE=PASSPHRASE)
    # `strongroom restore-image ID - | head -c 1000`
    restore = subprocess.Popen([sys.executable, "-m", "cli", "--store", str(store_dir),
                                "restore-image", snap, "-"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, cwd=REPO_ROOT)
    assert restore.stdout is not None
    head = restore.stdout.read(1000)
    restore.stdout.close()
    err = restore.communicate(timeout=60)[1].decode()
    assert len(head) == 1000
    assert restore.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "went away after" in lines[0] and "incomplete" in lines[0]


def test_a_passphrase_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path,
                                                              store_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_PASS")}
    bad_file = tmp_path / "pass"
    bad_file.write_bytes(b"caf\xe9\n")  # Latin-1, not UTF-8
    cases = [(["init"], {b"STRONGROOM_PASSPHRASE": b"caf\xe9"}, tmp_path / "new-store"),
             (["snapshots"], {b"STRONGROOM_PASSPHRASE": b"caf\xe9"}, store_dir),
             (["snapshots"], {b"STRONGROOM_PASSPHRASE_FILE": str(bad_file).encode()},
              store_dir)]
    for args, extra, store in cases:
        full = {k.encode(): v.encode() for k, v in env.items()} | extra
        res = subprocess.run([sys.executable, "-m", "cli", "--store", str(store), *args],
                             env=full, capture_output=True, cwd=REPO_ROOT, timeout=60)
        err = res.stderr.decode()
        assert res.returncode == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and "not UTF-8" in err, err
        assert "Traceback" not in err and "damaged" not in err
    assert not (tmp_path / "new-store").exists()


def test_hostile_snapshot_names_and_tags_cannot_drive_the_terminal(tmp_path: Path,
                                                                   store_dir: Path,
                                                                   store_cli) -> None:
    image = make_image(tmp_path / "a.img", 100_000, seed=3)
    name = "web\n\x1b]0;owned\x07\x1b[2J\u202eevil"
    res = store_cli("backup-image", str(image), "--name", name, "--tag", "note=\x1b[31mred")
    assert res.code == 0, res.stderr
    listing = store_cli("snapshots").out
    assert "\x1b" not in listing and "\x07" not in listing and "\u202e" not in listing
    rows = listing.splitlines()
    assert len(rows) == 2  # a header and one row: the newline did not split it
    assert "\\x1b]0;owned\\x07" in rows[1] and "\\xe2\\x80\\xae" in rows[1]
    doc = json.loads(store_cli("--json", "snapshots").out)
    assert doc[0]["name"] == name  # --json keeps the exact text


@pytest.mark.parametrize("version", [0, "1", 1.5, -1, True, None])
def test_unknown_format_versions_are_refused(tmp_path: Path, store_cli, version) -> None:
    """FORMAT.md §14: readers refuse unknown versions; only the integer 1 is known."""
    store = tmp_path / "odd"
    assert store_cli("init", store=store).code == 0
    config = json.loads((store / "config").read_text())
    config["strongroom_store"] = version
    (store / "config").write_text(json.dumps(config))
    for args in (["snapshots"], ["check"]):
        res = store_cli(*args, store=store)
        assert res.code == 2, (version, res.stderr)
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
        assert "format" in res.stderr


def _damage_manifest(store: Path, snap: str) -> None:
    manifest = store / "snapshots" / snap
    data = bytearray(manifest.read_bytes())
    data[20] ^= 1
    manifest.write_bytes(bytes(data))


def _drop_cache(tmp_path: Path) -> None:
    """Delete the local cache (tests/conftest.py points XDG_CACHE_HOME at a temp folder)."""
    import shutil
    shutil.rmtree(Path(os.environ["XDG_CACHE_HOME"]) / "strongroom", ignore_errors=True)


def test_a_damaged_manifest_is_listed_and_named_with_a_fresh_cache(tmp_path: Path,
                                                                   store_dir: Path,
                                                                   store_cli) -> None:
    good = json.loads(store_cli("--json", "backup-image",
                                str(make_image(tmp_path / "g.img", 200_000, seed=41))).out)
    image = make_image(tmp_path / "m.img", 200_000, seed=42)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    _damage_manifest(store_dir, snap)
    _drop_cache(tmp_path)
    listing = store_cli("snapshots")
    assert listing.code == 1, listing
    assert snap[:12] in listing.out and "damaged" in listing.out
    assert good["snapshot"][:12] in listing.out
    assert listing.stderr.count("\n") == 1 and "damaged" in listing.stderr
    as_json = store_cli("--json", "snapshots")
    assert as_json.code == 1
    rows = {r["id"]: r for r in json.loads(as_json.out)}
    assert rows[snap]["damaged"] and not rows[good["snapshot"]]["damaged"]
    for ref in (snap, snap[:8]):
        res = store_cli("restore-image", ref, str(tmp_path / "m.out"))
        assert res.code == 1, res.stderr
        assert "damaged" in res.stderr and res.stderr.count("\n") == 1
    assert not list(tmp_path.glob("m.out*"))


def test_a_restore_from_the_cached_manifest_says_so(tmp_path: Path, store_dir: Path,
                                                    store_cli) -> None:
    image = make_image(tmp_path / "w.img", 200_000, seed=43)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    assert store_cli("snapshots").code == 0  # the cache now holds the manifest
    _damage_manifest(store_dir, snap)
    out = tmp_path / "w.out"
    res = store_cli("restore-image", snap, str(out))
    assert res.code == 0, res.stderr
    assert out.read_bytes() == image.read_bytes()
    assert "cache" in res.stderr and "damaged" in res.stderr
    report = store_cli("--json", "check")
    assert report.code == 1 and json.loads(report.out)["damaged_snapshots"] == [snap]


def _cache_file(store: Path) -> Path:
    store_id = json.loads((store / "config").read_text())["id"]
    return Path(os.environ["XDG_CACHE_HOME"]) / "strongroom" / "stores" / f"{store_id}.sqlite"


def _all_commands_work(tmp_path: Path, store_cli, image: Path, snap: str,
                       expect: str) -> None:
    """snapshots, restore, check and backup run as if nothing happened, and the first of them
    says once, in one line on stderr, what became of the cache."""
    listing = store_cli("snapshots")
    assert listing.code == 0, listing.stderr
    assert snap[:12] in listing.out
    assert listing.stderr.count("\n") == 1 and expect in listing.stderr, listing.stderr
    assert "Traceback" not in listing.stderr and "Error" not in listing.stderr
    out = tmp_path / f"{snap[:6]}.out"
    res = store_cli("restore-image", snap, str(out))
    assert res.code == 0, res.stderr
    assert out.read_bytes() == image.read_bytes()
    assert store_cli("check", "--read-data").code == 0
    assert store_cli("backup-image", str(image)).code == 0


@pytest.mark.parametrize("damage", ["not a database", "malformed"])
def test_a_damaged_cache_is_rebuilt_from_the_store(tmp_path: Path, store_dir: Path, store_cli,
                                                   damage: str) -> None:
    image = make_image(tmp_path / "c.img", 400_000, seed=50)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    assert store_cli("snapshots").code == 0
    cache = _cache_file(store_dir)
    import sqlite3
    db = sqlite3.connect(cache)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(cache.read_bytes())
    assert len(data) > 8192
    if damage == "not a database":
        data[:100] = os.urandom(100)
    else:  # every page but the first (the schema's root) overwritten
        data[4096:] = b"\xa5" * (len(data) - 4096)
    cache.write_bytes(bytes(data))
    _all_commands_work(tmp_path, store_cli, image, snap, "rebuilt")


def test_a_file_where_the_cache_folder_should_be(tmp_path: Path, store_dir: Path,
                                                 store_cli) -> None:
    image = make_image(tmp_path / "f.img", 300_000, seed=51)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    import shutil
    folder = Path(os.environ["XDG_CACHE_HOME"]) / "strongroom"
    shutil.rmtree(folder)
    folder.write_text("not a folder")
    listing = store_cli("snapshots")
    assert listing.code == 0, listing.stderr
    assert str(folder) in listing.stderr and listing.stderr.count("\n") == 1
    _all_commands_work(tmp_path, store_cli, image, snap, str(folder))


def test_a_wrong_cache_does_not_make_check_blame_the_store(tmp_path: Path, store_dir: Path,
                                                          store_cli) -> None:
    image = make_image(tmp_path / "w.img", 400_000, seed=52, zero_every=0)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    import sqlite3
    db = sqlite3.connect(_cache_file(store_dir))
    db.execute("UPDATE blobs SET offset = offset + 1 WHERE type = 0")  # valid SQLite, wrong
    db.commit()
    db.close()
    for args in (["check"], ["check", "--read-data"]):
        res = store_cli("--json", *args)
        assert res.code == 0, (args, res.out, res.stderr)
        report = json.loads(res.out)
        assert report["problems"] == [] and report["damaged_snapshots"] == []
    res = store_cli("restore-image", snap, str(tmp_path / "w.out"))
    assert res.code == 0, res.stderr
    assert (tmp_path / "w.out").read_bytes() == image.read_bytes()


def test_check_read_data_takes_damaged_blobs_out_so_the_next_backup_stores_them(
        tmp_path: Path, store_dir: Path, store_cli) -> None:
    image = make_image(tmp_path / "d.img", 1_500_000, seed=53, zero_every=0)
    snap = json.loads(store_cli("--json", "backup-image", str(image)).out)["snapshot"]
    _flip_byte_in_largest_pack(store_dir)
    res = store_cli("check", "--read-data")
    assert res.code == 1
    assert "next backup" in res.out, res.out
    # a later check reads the store's index, where the damaged copy still is: the cache keeps
    # it out all the same
    assert store_cli("check").code == 0
    again = store_cli("--json", "backup-image", str(image))
    assert again.code == 0, again.stderr
    assert json.loads(again.out)["stored_bytes"] > 0  # the damaged chunk was stored anew
    for ref in (snap, json.loads(again.out)["snapshot"]):
        out = tmp_path / f"{ref[:8]}.out"
        res = store_cli("restore-image", ref, str(out))
        assert res.code == 0, res.stderr
        assert out.read_bytes() == image.read_bytes()
    assert store_cli("check", "--read-data").code == 1  # the damaged pack is still there
