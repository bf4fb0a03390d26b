"""Differences between two explorers (two backups of a volume): added, removed, changed.

Cost: metadata first. Entries whose type, size, mode and mtime all match are taken as
unchanged (the quick check rsync and restic use). Content is hashed only in the ambiguous
case: same type and size, but a different mtime, where a touch-only change is common.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.explore.entries import Entry
from engine.explore.explorer import Explorer

HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class Change:
    path: str
    before: Entry
    after: Entry
    reasons: tuple[str, ...]   # type, size, mode, target, content, mtime


@dataclass
class DiffResult:
    added: list[Entry] = field(default_factory=list)
    removed: list[Entry] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_json(self) -> dict:
        return {"added": [e.to_json() for e in self.added],
                "removed": [e.to_json() for e in self.removed],
                "changed": [{"path": c.path, "reasons": list(c.reasons),
                             "before": c.before.to_json(), "after": c.after.to_json()}
                            for c in self.changed]}


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c]  # explorer paths are escaped: '/' only separates


def _relative_map(explorer: Explorer, path: str) -> dict[str, Entry]:
    base = len(_components(explorer.resolve(path)))
    return {"/".join(_components(e.path)[base:]): e for e in explorer.walk(path)}


def _content_hash(explorer: Explorer, path: str) -> bytes:
    digest = hashlib.blake2b(digest_size=32)
    with explorer.open(path) as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.digest()


def _reasons(a: Explorer, ea: Entry, b: Explorer, eb: Entry) -> tuple[str, ...]:
    if ea.type != eb.type:
        return ("type",)
    reasons = []
    if ea.size != eb.size and ea.type != "dir":
        reasons.append("size")
    if ea.mode != eb.mode:
        reasons.append("mode")
    if ea.link_target != eb.link_target:
        reasons.append("target")
    if ea.mtime_ns != eb.mtime_ns and ea.type == "file" and "size" not in reasons:
        if _content_hash(a, ea.path) != _content_hash(b, eb.path):
            reasons.append("content")
    return tuple(reasons)


def diff(a: Explorer, b: Explorer, path: str = "/",
         progress: Callable[[int], None] | None = None) -> DiffResult:
    """What changed under ``path`` going from ``a`` (older) to ``b`` (newer)."""
    old, new = _relative_map(a, path), _relative_map(b, path)
    result = DiffResult()
    for i, rel in enumerate(sorted(old.keys() | new.keys())):
        if progress:
            progress(i)
        ea, eb = old.get(rel), new.get(rel)
        if ea is None and eb is not None:
            result.added.append(eb)
        elif eb is None and ea is not None:
            result.removed.append(ea)
        elif ea is not None and eb is not None:
            reasons = _reasons(a, ea, b, eb)
            if reasons:
                result.changed.append(Change(eb.path, ea, eb, reasons))
    return result
