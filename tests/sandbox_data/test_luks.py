"""The hand-written LUKS2 header: deterministic, and cryptsetup accepts it and its passphrase."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from engine.sandbox import luks


def _af_merge(split: bytes, size: int, stripes: int) -> bytes:
    acc = bytes(size)
    for n in range(stripes - 1):
        acc = luks._diffuse(bytes(a ^ b for a, b in zip(acc, split[n * size : (n + 1) * size])))
    return bytes(a ^ b for a, b in zip(acc, split[(stripes - 1) * size :]))


def test_af_split_merges_back():
    key = os.urandom(64)
    split = luks.af_split(key, 40, os.urandom(39 * 64))
    assert len(split) == 40 * 64 and _af_merge(split, 64, 40) == key


def test_header_is_deterministic_and_accepted_by_cryptsetup(tmp_path: Path):
    uuid = "0a1b2c3d-0000-4000-8000-000000000001"
    one = luks.luks2_header(b"pass", uuid, b"entropy")
    assert one == luks.luks2_header(b"pass", uuid, b"entropy")
    assert one != luks.luks2_header(b"pass", uuid, b"other entropy")
    volume = tmp_path / "vol"
    with open(volume, "wb") as out:
        out.truncate(64 << 20)
        luks.write_luks2_header(out, b"pass", uuid, b"entropy")
    dump = subprocess.run(["cryptsetup", "luksDump", str(volume)], capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    assert uuid in dump.stdout and "aes-xts-plain64" in dump.stdout and "pbkdf2" in dump.stdout
    (tmp_path / "key").write_bytes(b"pass")
    test = subprocess.run(["cryptsetup", "luksOpen", "--test-passphrase", "--key-file",
                           str(tmp_path / "key"), str(volume)], capture_output=True, text=True)
    assert test.returncode == 0, test.stderr
