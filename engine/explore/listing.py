"""How a directory's entries are ordered and narrowed for a person: natural order (``file2``
before ``file10``), directories first, and a name filter. Any driver can use these (the app's
explorer does; ``ls`` could): the order and what a filter matches are then the same everywhere.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from engine.explore.entries import Entry
from engine.terminal import show_hidden

_DIGITS = re.compile(r"(\d+)")

NaturalKey = tuple[tuple[str | int, ...], str]


def natural_key(name: str) -> NaturalKey:
    """Sort key: runs of digits compare as numbers, the rest without regard to case; the name
    itself breaks ties, so the order is total (``file01`` and ``file1`` never swap)."""
    parts = _DIGITS.split(name)  # text, digits, text, … : ints and strs never meet in a compare
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), name


def sort_entries(entries: Iterable[Entry], dirs_first: bool = True) -> list[Entry]:
    """Entries in natural order of name, directories first (unless ``dirs_first`` is False)."""
    return sorted(entries, key=lambda e: (dirs_first and not e.is_dir, natural_key(e.name),
                                          e.inode))


def name_matches(pattern: str, name: str) -> bool:
    """Does ``name`` hold ``pattern``? Smart case, as in less and vim: case-insensitive unless
    the pattern has a capital. Both the name and its shown form (hidden characters as
    ``\\xNN``) are tried, so what a person reads on screen is what they can type."""
    if not pattern:
        return True
    fold = pattern == pattern.lower()
    needle = pattern.casefold() if fold else pattern
    for text in (name, show_hidden(name)):
        if needle in (text.casefold() if fold else text):
            return True
    return False


def filter_entries(entries: Iterable[Entry], pattern: str) -> list[Entry]:
    """The entries whose name holds ``pattern`` (see :func:`name_matches`), order kept."""
    return [e for e in entries if name_matches(pattern, e.name)]


def find_all(pattern: str, text: str) -> list[int]:
    """Offsets in ``text`` where ``pattern`` starts (smart case, not overlapping): a preview's
    search, with the filter's rule for case."""
    if not pattern:
        return []
    haystack, needle = text, pattern
    if pattern == pattern.lower():
        # a fold that changes lengths (ß → ss) would shift the offsets: the next one is tried
        for fold in (str.casefold, str.lower):
            if len(fold(text)) == len(text):
                haystack, needle = fold(text), fold(pattern)
                break
    found, at = [], haystack.find(needle)
    while at >= 0 and needle:
        found.append(at)
        at = haystack.find(needle, at + len(needle))
    return found
