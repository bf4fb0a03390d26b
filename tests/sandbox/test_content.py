"""The seeded volumes hold what they claim: real ext4 file systems and a LUKS header, in sparse
files of the volume's full size."""
from __future__ import annotations

import subprocess

import pytest

pytest.importorskip("engine.sandbox.content")


def _blkid(path) -> str:
    return subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", str(path)],
                          capture_output=True, text=True).stdout.strip()


def test_seeded_volumes_are_real_file_systems(sandbox):
    volumes = {v["name"]: v for v in sandbox.world.state.coll("volumes").values()}
    for name, volume in volumes.items():
        path = sandbox.volume_path(volume["id"])
        assert path.stat().st_size == volume["size"], name
        assert path.stat().st_blocks * 512 < 64 * 1024 * 1024, f"{name} is not sparse"
        expected = "crypto_LUKS" if name == "vault-secrets" else "ext4"
        assert _blkid(path) == expected, name


def test_seeded_snapshot_has_its_volume_content(sandbox):
    state = sandbox.world.state
    snapshot = next(iter(s for s in state.coll("snapshots").values() if s.get("_from_volume")))
    assert _blkid(sandbox.snapshot_path(snapshot["id"])) == "ext4"


def test_e2fsprogs_are_found_outside_a_users_path(tmp_path, monkeypatch):
    """Debian keeps mke2fs and debugfs in /usr/sbin, which is not on a user's PATH: there
    `strongroom demo` stopped with a bare "[Errno 2] No such file or directory: 'mke2fs'"."""
    from engine.errors import OperationError
    from engine.sandbox import content

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    dest = tmp_path / "volume.img"
    content.build_ext4(dest, 16 << 20, seed=1, volume_id="vol-1", budget=1 << 20)
    with open(dest, "rb") as f:
        f.seek(1024 + 56)
        assert f.read(2) == b"\x53\xef"  # the ext4 superblock's magic
    with pytest.raises(OperationError, match=r"^no-such-tool not found .*install e2fsprogs"):
        content.tool("no-such-tool")
