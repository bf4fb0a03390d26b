"""Seeded volume contents: real ext4 file systems (mke2fs -d), a LUKS volume, deterministic."""
from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from engine.sandbox import content
from engine.sandbox.content import VolumeSpec, build_volumes, volume_file
from tests.sandbox_data.conftest import GiB, MiB, same_content

SPECS = [
    VolumeSpec("11111111-aaaa-4aaa-8aaa-000000000001", 10 * GiB, "ext4", "web"),
    VolumeSpec("11111111-aaaa-4aaa-8aaa-000000000002", 5 * GiB, "luks"),
    VolumeSpec("11111111-aaaa-4aaa-8aaa-000000000003", 6 * GiB, "empty"),
]
EXT4, LUKS, EMPTY = SPECS


def debugfs(image: Path, request: str) -> str:
    answer = subprocess.run(["debugfs", "-R", request, str(image)], capture_output=True, text=True)
    assert answer.returncode == 0, answer.stderr
    return answer.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_volumes(tmp_path_factory.mktemp("state"), SPECS, seed=42, profile="small")


def test_volumes_are_sparse_files_of_their_size(built: dict[str, Path]):
    for spec in SPECS:
        path = built[spec.id]
        assert path.stat().st_size == spec.size >= 5 * GiB
        assert path.stat().st_blocks * 512 < 64 * MiB
    assert built[EMPTY.id].stat().st_blocks == 0
    assert built[EXT4.id].stat().st_blocks * 512 > 1 * MiB  # the small profile's data is there


def test_ext4_is_a_clean_file_system_with_the_generated_tree(built: dict[str, Path]):
    image = built[EXT4.id]
    fsck = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    top = debugfs(image, "ls -l /")
    for name in ("etc", "home", "opt", "srv", "var", "backups", "lost+found"):
        assert f" {name}\n" in top or f" {name} " in top, top
    ops = debugfs(image, "ls -l /home/ops")
    assert "[bold]x[" in ops and "[red]alert[reset].txt" in ops and "report 2026 (final).txt" in ops
    assert "].txt" in debugfs(image, 'ls -l "/home/ops/[bold]x["')
    assert "web.log" in debugfs(image, "ls -l /var/log/web")
    link = debugfs(image, "stat /var/log/web/current")
    assert "Type: symlink" in link and 'Fast link dest: "web.log"' in link
    log = debugfs(image, "cat /var/log/web/web.log")
    assert log.count("\n") > 100 and " req=" in log


def test_ext4_holds_a_real_sqlite_database(built: dict[str, Path], tmp_path: Path):
    out = tmp_path / "web.sqlite"
    debugfs(built[EXT4.id], f"dump /srv/web/db/web.sqlite {out}")
    db = sqlite3.connect(out)
    try:
        assert db.execute("SELECT count(*) FROM orders").fetchone()[0] >= 200
        assert db.execute("SELECT count(*) FROM customers").fetchone()[0] > 10
    finally:
        db.close()


def test_luks_volume_has_a_real_luks2_header(built: dict[str, Path], tmp_path: Path):
    path = built[LUKS.id]
    with open(path, "rb") as f:
        assert f.read(6) == b"LUKS\xba\xbe"
    assert subprocess.run(["cryptsetup", "isLuks", str(path)]).returncode == 0
    dump = subprocess.run(["cryptsetup", "luksDump", str(path)], capture_output=True, text=True)
    assert dump.returncode == 0 and "Version:       \t2" in dump.stdout
    key = tmp_path / "key"
    key.write_bytes(content.luks_key(42, LUKS.id))
    opened = subprocess.run(["cryptsetup", "luksOpen", "--test-passphrase", "--key-file", str(key),
                             str(path)], capture_output=True, text=True)
    assert opened.returncode == 0, opened.stderr
    key.write_bytes(b"not the key")
    wrong = subprocess.run(["cryptsetup", "luksOpen", "--test-passphrase", "--key-file", str(key),
                            str(path)], capture_output=True, text=True)
    assert wrong.returncode != 0


def test_same_seed_same_tree_and_bytes(tmp_path: Path, built: dict[str, Path]):
    again = build_volumes(tmp_path / "again", SPECS, seed=42, profile="small")
    for spec in SPECS:
        assert same_content(built[spec.id], again[spec.id])
    one = content.generate_tree(tmp_path / "t1", 42, EXT4.id, 1 * MiB, "web")
    two = content.generate_tree(tmp_path / "t2", 42, EXT4.id, 1 * MiB, "web")
    assert one == two and len(one) > 20
    for rel in one:
        a, b = tmp_path / "t1" / rel, tmp_path / "t2" / rel
        if a.is_symlink():
            assert a.readlink() == b.readlink()
        else:
            assert a.read_bytes() == b.read_bytes(), rel


def test_another_seed_other_bytes(tmp_path: Path):
    one = content.generate_tree(tmp_path / "t1", 1, "vol", 256 * 1024, "app")
    two = content.generate_tree(tmp_path / "t2", 2, "vol", 256 * 1024, "app")
    assert (tmp_path / "t1/var/log/app/app.log").read_bytes() != \
        (tmp_path / "t2/var/log/app/app.log").read_bytes()
    assert one and two


def test_built_volumes_are_reused_not_rebuilt(tmp_path: Path):
    state = tmp_path / "state"
    first = build_volumes(state, [EXT4], seed=3, profile="small")
    path = first[EXT4.id]
    with open(path, "r+b") as f:  # the volume's state changes: a restart must keep it
        f.seek(7 * GiB)
        f.write(b"written by a test")
    again = build_volumes(state, [EXT4], seed=3, profile="small")
    with open(again[EXT4.id], "rb") as f:
        f.seek(7 * GiB)
        assert f.read(17) == b"written by a test"
    # another seed is another content: rebuilt
    other = build_volumes(state, [EXT4], seed=4, profile="small")
    with open(other[EXT4.id], "rb") as f:
        f.seek(7 * GiB)
        assert f.read(17) == bytes(17)


def test_cache_dir_copies_sparsely(tmp_path: Path):
    cache = tmp_path / "cache"
    a = build_volumes(tmp_path / "a", [EXT4], seed=5, profile="small", cache_dir=cache)
    b = build_volumes(tmp_path / "b", [EXT4], seed=5, profile="small", cache_dir=cache)
    cached = volume_file(cache, EXT4.id)
    assert same_content(cached, a[EXT4.id]) and same_content(cached, b[EXT4.id])
    assert b[EXT4.id].stat().st_blocks <= cached.stat().st_blocks + 16


def test_bad_specs_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="profile"):
        build_volumes(tmp_path, [EXT4], profile="huge")
    with pytest.raises(ValueError, match="kind"):
        build_volumes(tmp_path, [VolumeSpec("x", GiB, "zfs")])  # type: ignore[arg-type]
