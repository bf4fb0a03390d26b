"""Figures the app shows: the dedup ratio stays readable at its extremes."""
from __future__ import annotations

import pytest

from tui.format import dedup_ratio


@pytest.mark.parametrize(("read", "stored", "text"), [
    (0, 0, "–"), (100, None, "–"),
    (100, 40, "2.5×"), (100, 100, "1.0×"), (1000, 37, "27×"),
    (2535, 1, ">100×"),   # was 2535.0×
    (4096, 0, ">100×"),   # nothing new stored: was ∞×
])
def test_dedup_ratio(read: int, stored: int | None, text: str) -> None:
    assert dedup_ratio(read, stored) == text
