"""One way to write sizes, shared by the command line and the app (engine/units.py)."""
from __future__ import annotations

import io

import pytest

from cli.progress import ProgressBar
from engine.units import human_bytes


@pytest.mark.parametrize(("n", "text"), [
    (None, "–"),
    (0, "0 B"),
    (1, "1 B"),
    (1023, "1023 B"),
    (1024, "1.0 KiB"),
    (1536, "1.5 KiB"),
    (1024 ** 2 - 1, "1024.0 KiB"),  # rounds up in its unit, as the app always showed it
    (10 * 1024 ** 2, "10.0 MiB"),
    (3.5 * 1024 ** 3, "3.5 GiB"),
    (1024 ** 4, "1.0 TiB"),
    (2048 * 1024 ** 4, "2048.0 TiB"),  # TiB is the largest unit
    (-2048, "-2.0 KiB"),
    (12.7, "13 B"),
])
def test_human_bytes(n: float | int | None, text: str) -> None:
    assert human_bytes(n) == text


def test_the_command_line_progress_bar_writes_sizes_the_same_way() -> None:
    out = io.StringIO()
    bar = ProgressBar("backup", stream=out, enabled=True)
    bar.update(1024 ** 2, 2 * 1024 ** 2)
    assert "1.0 MiB/2.0 MiB" in out.getvalue()
