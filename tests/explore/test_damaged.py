"""A filesystem damaged in places (destroyed extent headers, as a bad sector leaves them): the
damaged entries fail alone, with a typed one-line reason; everything around them lists,
reads and restores; and no cut file is ever left looking whole."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.explore import DamagedDataError, open_volume, restore
from engine.explore.restore import RestoreCancelled
from tests.fixtures.explore import DamagedImage


@pytest.fixture
def damaged(damaged_image: DamagedImage):
    with open(damaged_image.raw, "rb") as fh:
        yield open_volume(fh)


def test_damaged_entries_fail_alone_with_a_typed_error(damaged) -> None:
    assert [e.name for e in damaged.listdir("/ok")] == ["broken.bin", "fine.txt"]
    assert damaged.read_file("/ok/fine.txt") == b"still readable\n"
    with pytest.raises(DamagedDataError, match="/broken-dir: the directory cannot be read"):
        damaged.listdir("/broken-dir")
    with pytest.raises(DamagedDataError, match="/ok/broken.bin: the file cannot be read"):
        damaged.read_file("/ok/broken.bin")
    assert {e.path for e in damaged.walk("/")} >= {"/ok/fine.txt", "/big.bin", "/broken-dir"}


def test_restore_goes_on_around_damage_and_leaves_no_cut_file(
        damaged, damaged_image: DamagedImage, tmp_path: Path) -> None:
    report = restore(damaged, "/", tmp_path)
    assert sorted(s.split(": ")[0] for s in report.skipped) == ["/broken-dir", "/ok/broken.bin"]
    root = tmp_path / "root"
    assert (root / "ok" / "fine.txt").read_text() == "still readable\n"
    assert (root / "big.bin").read_bytes() == (damaged_image.tree / "big.bin").read_bytes()
    assert not (root / "ok" / "broken.bin").exists()


def test_cancel_mid_file_removes_the_cut_file(damaged, tmp_path: Path) -> None:
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        cancel.set()  # after the first block of the 3 MiB file

    with pytest.raises(RestoreCancelled, match="cancelled"):
        restore(damaged, "/big.bin", tmp_path, progress=progress, cancel=cancel)
    assert list(tmp_path.iterdir()) == []
