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


@pytest.mark.parametrize(("count", "word", "text"), [
    (0, "file", "0 files"), (1, "file", "1 file"), (2, "file", "2 files"),
    (1, "entry", "1 entry"), (3, "entry", "3 entries"), (1, "directory", "1 directory"),
    (2, "directory", "2 directories"), (2, "day", "2 days"), (1, "job", "1 job"),
    (2, "child", "2 children"),
])
def test_plural(count: int, word: str, text: str) -> None:
    from engine.units import plural

    many = "children" if word == "child" else None
    assert plural(count, word, many) == text


def test_no_count_of_one_is_followed_by_a_plural_in_the_sources() -> None:
    """"1 files", "1 entries": counts are written with plural(), not "{n} files"."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    pattern = re.compile(r"\{(len\([^)]*\)|[\w.\[\]'\"]+)\} (files|entries|snapshots|jobs|"
                         r"packs|blobs|problems|directories|symlinks|backups|items)\b"
                         r"|\b(job|backup|snapshot|volume|file|parameter)\(s\)(?=[ \"'])")
    found = [f"{path.relative_to(root)}:{n}: {line.strip()}"
             for folder in ("engine", "cli", "tui") for path in (root / folder).rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if pattern.search(line) and not any(
                 fine in line for fine in ("ambiguous", "share the name", "== 1", "{period}"))]
    assert found == []
