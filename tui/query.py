"""The `/` filter's syntax, one for every list of the app (volumes, snapshots).

Words separated by spaces; every word must match. A bare word matches any field; ``key:value``
matches that field only (a substring, case-insensitive). A key the list does not know is
reported (``problem``) and left out, never silently matched to nothing.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

Fields = dict[str, list[str]]  # key → lower-case texts a word may be found in


@dataclass(frozen=True)
class Query:
    terms: tuple[tuple[str, str], ...] = ()    # (key or "", value), lower-case
    problem: str = ""
    keys: tuple[str, ...] = field(default=(), compare=False)

    @property
    def active(self) -> bool:
        return bool(self.terms)


def parse(text: str, keys: Iterable[str]) -> Query:
    known = tuple(keys)
    terms: list[tuple[str, str]] = []
    unknown: list[str] = []
    for word in text.lower().split():
        key, found, value = word.partition(":")
        if not found:
            terms.append(("", word))
        elif key in known:
            if value:
                terms.append((key, value))
        else:
            unknown.append(key or word)
    problem = ""
    if unknown:
        names = ", ".join(f"{k}:" for k in unknown)
        problem = f"unknown key {names} — use " + " ".join(f"{k}:" for k in known)
    return Query(tuple(terms), problem, known)


def matches(fields: Fields, query: Query) -> bool:
    for key, value in query.terms:
        texts = fields.get(key, []) if key else [t for ts in fields.values() for t in ts]
        if not any(value in text for text in texts):
            return False
    return True
