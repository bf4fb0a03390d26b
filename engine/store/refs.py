"""Naming a snapshot: a full id, a unique prefix of at least 6 hex characters, ``latest:VOLUME``
(the newest backup of that volume, by name or id), or a bare ``latest`` when the store holds
backups of one source only.

A bare ``latest`` in a store with two volumes' backups once restored the other volume's backup
and exited 0: "the newest snapshot of the store" is almost never what a person means, so it is
refused (with the sources listed) rather than guessed.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.errors import UsageError
from engine.store.retention import GroupKey, group_snapshots
from engine.store.snapshot import SnapshotInfo

LATEST = "latest"


@dataclass(frozen=True)
class Source:
    """What a set of snapshots backs up: one volume (id, zone), or images of one name."""

    key: GroupKey
    name: str  # the volume's name as last backed up, or the image's name

    @property
    def label(self) -> str:
        if self.key.kind == "volume":
            where = f"{self.key.volume_id}, {self.key.zone}" if self.key.zone else \
                self.key.volume_id
            return f"volume {self.name or '?'} ({where})"
        return f"image {self.name}" if self.name else "unnamed image"

    @property
    def ref(self) -> str:
        """What to write after ``latest:`` to name this source."""
        return self.key.volume_id if self.key.kind == "volume" else self.name


def source_of(info: SnapshotInfo) -> Source:
    (key,) = group_snapshots([info], "volume")
    name = str((info.source or {}).get("volume_name") or info.name) if key.kind == "volume" \
        else info.name
    return Source(key, name)


def sources(infos: list[SnapshotInfo]) -> dict[Source, list[SnapshotInfo]]:
    """The snapshots (oldest first) of each source, newest name winning."""
    return {source_of(group[-1]): group
            for group in group_snapshots(infos, "volume").values()}


def with_volume(ref: str, volume: str | None) -> str:
    """``latest`` with ``--volume VOLUME`` is ``latest:VOLUME``; ``--volume`` with anything else
    is a usage error (an id already names one snapshot)."""
    if not volume:
        return ref
    if ref.strip().lower() != LATEST:
        raise UsageError(f"--volume goes with latest: write 'latest --volume {volume}' or "
                         f"'latest:{volume}', or give only the snapshot id {ref!r}")
    return f"{LATEST}:{volume}"


def match_ref(ref: str, infos: list[SnapshotInfo], where: str) -> SnapshotInfo:
    """The snapshot ``ref`` names among ``infos`` (oldest first)."""
    ref = ref.strip()
    head, sep, volume = ref.partition(":")
    if head.lower() == LATEST:
        if not infos:
            raise UsageError(f"the store at {where} has no snapshots yet")
        if sep:
            return _latest_of(volume.strip(), infos, where)
        return _only_latest(infos)
    ref = ref.lower()
    if len(ref) < 6 or any(c not in "0123456789abcdef" for c in ref):
        raise UsageError(f"bad snapshot reference {ref!r}: give an id, a prefix of at least "
                         "6 hex characters, or latest:VOLUME")
    matches = [i for i in infos if i.id.startswith(ref)]
    if not matches:
        raise UsageError(f"no snapshot {ref} in the store at {where}: "
                         "see 'strongroom snapshots'")
    if len(matches) > 1:
        raise UsageError(f"snapshot prefix {ref} is ambiguous ({len(matches)} snapshots "
                         "match): give more characters")
    return matches[0]


def _only_latest(infos: list[SnapshotInfo]) -> SnapshotInfo:
    found = sources(infos)
    if len(found) > 1:
        listed = "; ".join(s.label for s in found)
        raise UsageError(f"'latest' is ambiguous: the store holds backups of {len(found)} "
                         f"sources ({listed}); say which with latest:VOLUME or --volume VOLUME")
    return infos[-1]


def _latest_of(volume: str, infos: list[SnapshotInfo], where: str) -> SnapshotInfo:
    if not volume:
        raise UsageError("latest: needs a volume after the colon, such as latest:web-01-data")
    found = sources(infos)
    chosen = [s for s in found if s.key.kind == "volume" and s.key.volume_id == volume]
    if not chosen:
        chosen = [s for s in found
                  if s.name == volume or any(_names(i, volume) for i in found[s])]
    if not chosen:
        known = ", ".join(sorted({s.name for s in found})) or "none"
        raise UsageError(f"no backup of {volume!r} in the store at {where} (sources: {known}); "
                         "see 'strongroom snapshots'")
    if len(chosen) > 1:
        listed = "; ".join(s.label for s in chosen)
        raise UsageError(f"several sources are named {volume!r} ({listed}): "
                         "write latest:VOLUME_ID instead")
    return found[chosen[0]][-1]


def _names(info: SnapshotInfo, volume: str) -> bool:
    """Whether a snapshot was taken of a volume (or image) then named ``volume``."""
    source = info.source or {}
    return source.get("volume_name") == volume or (not source.get("volume_id")
                                                  and info.name == volume)
