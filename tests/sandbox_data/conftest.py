"""Fixtures of the sandbox data side: sparse raw files, qemu-img helpers, one moto server."""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.sandbox.qcow2 import data_ranges
from engine.sandbox.s3 import S3Server

MiB = 1 << 20
GiB = 1 << 30


def make_sparse(path: Path, size: int, pieces: dict[int, bytes]) -> Path:
    """A sparse file of `size` bytes with `pieces` (offset → bytes) written, holes elsewhere."""
    with open(path, "wb") as out:
        out.truncate(size)
        for offset, data in pieces.items():
            out.seek(offset)
            out.write(data)
    return path


def same_content(a: Path, b: Path) -> bool:
    """Byte equality of two (sparse) files, reading only where either has data."""
    if a.stat().st_size != b.stat().st_size:
        return False
    size = a.stat().st_size
    with open(a, "rb") as fa, open(b, "rb") as fb:
        ranges = sorted(list(data_ranges(fa.fileno(), size)) + list(data_ranges(fb.fileno(), size)))
        for start, stop in ranges:
            for offset in range(start, stop, 8 * MiB):
                length = min(8 * MiB, stop - offset)
                if os.pread(fa.fileno(), length, offset) != os.pread(fb.fileno(), length, offset):
                    return False
    return True


def qemu_img(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True)


def qemu_info(path: Path) -> dict:
    answer = qemu_img("info", "--output=json", str(path))
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


@pytest.fixture
def sparse_raw(tmp_path: Path) -> Path:
    """600 MiB + 1.5 KiB virtual (crosses an L2 table boundary, ends mid-cluster) with data at
    the start, mid-cluster, across the 512 MiB boundary, an all-zero allocated range, the end."""
    size = 600 * MiB + 1536
    rnd = os.urandom(3 * MiB)
    return make_sparse(tmp_path / "vol.raw", size, {
        0: b"\x55" * 4096,
        1_000_001: rnd[:70_000],
        512 * MiB - 100_000: rnd[: 2 * MiB],
        300 * MiB: bytes(1 * MiB),
        size - 3000: b"THE END".ljust(3000, b"!"),
    })


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(state_dir=tmp_path_factory.mktemp("s3-state"), seed=1) as server:
        yield server
