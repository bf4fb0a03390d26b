"""LocalBackend's ranged reads: ``get`` and the buffer-filling ``read_into`` restores use."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import OperationError
from engine.store.backends import LocalBackend, NotFound


def test_read_into_matches_get(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "store")
    backend.create()
    data = os.urandom(3 * 1024 * 1024 + 17)
    backend.put("packs/ab/abcd", data)
    buf = bytearray(1024 * 1024 + 5)
    backend.read_into("packs/ab/abcd", 123_457, memoryview(buf))
    assert bytes(buf) == data[123_457:123_457 + len(buf)]
    assert backend.get("packs/ab/abcd", 123_457, len(buf)) == bytes(buf)


def test_read_into_refuses_short_and_missing_files(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "store")
    backend.create()
    backend.put("packs/ab/abcd", b"x" * 1000)
    with pytest.raises(OperationError, match="shorter than its index says"):
        backend.read_into("packs/ab/abcd", 900, memoryview(bytearray(200)))
    with pytest.raises(NotFound):
        backend.read_into("packs/ab/gone", 0, memoryview(bytearray(10)))
