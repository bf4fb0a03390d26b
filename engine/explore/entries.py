"""What the explorer hands out: plain data about one file inside an image."""
from __future__ import annotations

import stat as statmod
from dataclasses import asdict, dataclass
from datetime import datetime, timezone


def iso_time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Entry:
    """One directory entry. ``name`` and ``link_target`` are untrusted text from the image."""

    name: str
    path: str                 # absolute inside the explorer, '/'-separated
    type: str                 # file | dir | symlink | other
    size: int
    mode: int                 # st_mode: type bits and permissions
    mtime_ns: int
    link_target: str | None = None
    inode: int = 0            # identity inside its filesystem (hard links, loops)

    @property
    def mtime(self) -> str:
        return iso_time(self.mtime_ns)

    @property
    def permissions(self) -> str:
        return statmod.filemode(self.mode)

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["mtime"] = self.mtime
        doc["permissions"] = self.permissions
        return doc


@dataclass(frozen=True)
class VolumeInfo:
    """One volume found on the disk, and whether it could be opened (if not, why)."""

    name: str
    description: str
    size: int
    filesystem: str | None
    problem: str | None = None
