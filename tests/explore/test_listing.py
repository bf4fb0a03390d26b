"""Natural order, the name filter and the preview's search (engine.explore.listing)."""
from __future__ import annotations

from engine.explore import Entry
from engine.explore.listing import filter_entries, find_all, name_matches, natural_key, \
    sort_entries


def entry(name: str, kind: str = "file") -> Entry:
    return Entry(name=name, path=f"/{name}", type=kind, size=0, mode=0o100644, mtime_ns=0)


def test_numbers_compare_as_numbers() -> None:
    names = ["file10", "file2", "File3", "file1", "file01", "a", "file", "b2c10", "b2c9"]
    assert sorted(names, key=natural_key) == \
        ["a", "b2c9", "b2c10", "file", "file01", "file1", "file2", "File3", "file10"]


def test_directories_first_then_natural() -> None:
    got = sort_entries([entry("z1"), entry("d10", "dir"), entry("a10"), entry("d9", "dir"),
                        entry("a9")])
    assert [e.name for e in got] == ["d9", "d10", "a9", "a10", "z1"]
    assert [e.name for e in sort_entries([entry("b", "dir"), entry("a")], dirs_first=False)] \
        == ["a", "b"]


def test_filter_smart_case_and_shown_form() -> None:
    assert name_matches("readme", "README.md") and not name_matches("README", "readme.md")
    assert name_matches("\\x1b", "\x1b[2J")          # what the screen shows can be typed
    assert name_matches("", "anything")
    es = [entry("file1"), entry("file10"), entry("other")]
    assert [e.name for e in filter_entries(es, "file1")] == ["file1", "file10"]


def test_find_all() -> None:
    assert find_all("ab", "abxAbab") == [0, 3, 5]
    assert find_all("Ab", "abxAbab") == [3]
    assert find_all("aa", "aaaa") == [0, 2]
    assert find_all("x", "straße x") == [7]         # ß folds to ss: offsets must not drift
    assert find_all("", "abc") == []
