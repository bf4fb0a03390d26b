"""Naming a snapshot on the command line: ``--volume`` beside ``latest``, and the line that says
which snapshot a name resolved to, printed before a command acts on it."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from cli.output import PROG, one_line
from engine.session import Session

if TYPE_CHECKING:  # the store loads when a command opens one, not at start-up
    from engine.store import SnapshotInfo
    from engine.store.refs import Source

SNAPSHOT_HELP = ("snapshot id, unique prefix (>= 6), latest:VOLUME (the newest backup of that "
                 "volume, by name or id) or latest (when the store holds one source)")


def add_snapshot_argument(p: argparse.ArgumentParser, dest: str = "snapshot") -> None:
    p.add_argument(dest, metavar="SNAPSHOT", help=SNAPSHOT_HELP)
    p.add_argument("--volume", metavar="VOLUME",
                   help="with latest: the newest backup of this volume (name or id)")


def resolve(session: Session, ref: str, volume: str | None = None) -> "SnapshotInfo":
    """The snapshot ``ref`` names, said on stderr before anything is done with it (unless
    ``ref`` is the whole id: then there was nothing to resolve)."""
    info = session.resolve(ref, volume)
    if ref.strip().lower() != info.id:
        print(f"{PROG}: {one_line(describe(info))}", file=sys.stderr, flush=True)
    return info


def _source(info: "SnapshotInfo") -> "Source":
    from engine.store.refs import source_of
    return source_of(info)


def describe(info: "SnapshotInfo") -> str:
    when = info.time.replace("T", " ")[:19]
    return f"snapshot {info.id[:12]} of {_source(info).label}, taken {when} UTC"


def fields(info: "SnapshotInfo") -> dict[str, object]:
    """The resolved snapshot, for a command's --json document."""
    source = _source(info)
    return {"id": info.id, "time": info.time, "source": source.label,
            "volume_id": source.key.volume_id or None,
            "volume_name": source.name if source.key.kind == "volume" else None,
            "name": info.name}
