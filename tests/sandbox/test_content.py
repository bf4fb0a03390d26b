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
