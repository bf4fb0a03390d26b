"""Is each volume protected? Facts the store's snapshots give, joined to the inventory.

The store knows every volume it ever backed up (its snapshots record the volume's id, name,
project, zone, size and type), so a volume deleted since, or in a project the key can no
longer list, is still known — and restorable. :func:`stored_volumes` gathers these facts per
volume; :func:`protection_of` turns a volume's last backup into a state word.

The state here is the plain backup-age one (``ok`` within :data:`STALE_AFTER`, else
``stale``; ``never``; ``not-backupable``; ``gone``). A policy state (policies' RPO per volume)
replaces it by giving :func:`protection_of` the volume's own ``stale_after``, or by building
:class:`Protection` itself: drivers only read ``state``, ``age`` and ``reason``.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from engine.scaleway.inventory import VolumeInfo
from engine.store.snapshot import SnapshotInfo

if TYPE_CHECKING:
    from engine.policies.status import VolumeStatus

# A day, plus slack for a nightly run that starts late: what "recent" means without a policy.
STALE_AFTER = 26 * 3600.0

OK, STALE, NEVER, NOT_BACKUPABLE, GONE = "ok", "stale", "never", "not-backupable", "gone"
STATES = (OK, STALE, NEVER, NOT_BACKUPABLE, GONE)
# the words a policy gives (engine.policies.status), besides ok and not-backupable
DUE, OVERDUE, NO_POLICY = "due", "overdue", "no policy"
GONE_REASON = ("not in the inventory: deleted since, or in a project this key cannot list; "
               "its backups can still be restored")


@dataclass(frozen=True)
class StoredVolume:
    """A volume as the store's snapshots describe it (the newest snapshot's facts)."""

    volume_id: str
    name: str
    project_id: str
    zone: str
    size: int
    type: str
    perf_iops: int | None
    backup_count: int
    last_backup: str            # ISO time of the newest snapshot
    last_snapshot_id: str
    tags: tuple[str, ...] = ()

    def as_volume(self) -> VolumeInfo:
        """The volume as the inventory would show it, marked gone (it can only be restored)."""
        return VolumeInfo(id=self.volume_id, name=self.name, zone=self.zone,
                          project_id=self.project_id, size=self.size, type=self.type,
                          perf_iops=self.perf_iops, status=GONE, tags=list(self.tags),
                          backupable=False, reason=GONE_REASON, last_backup=self.last_backup,
                          backup_count=self.backup_count)


@dataclass(frozen=True)
class Protection:
    state: str                  # one of STATES (a policy may add its own words)
    age: float | None           # seconds since the last backup; None when there is none
    last_backup: str | None
    backup_count: int
    reason: str                 # one line a person reads: why this state
    policy: str | None = None   # the policy that set the state (None: the plain backup age)


def stored_volumes(snapshots: Iterable[SnapshotInfo]) -> dict[str, StoredVolume]:
    """Every volume the store holds backups of, by volume id (image backups have none)."""
    groups: dict[str, list[SnapshotInfo]] = {}
    for snap in snapshots:
        volume_id = (snap.source or {}).get("volume_id")
        if volume_id:
            groups.setdefault(str(volume_id), []).append(snap)
    out: dict[str, StoredVolume] = {}
    for volume_id, snaps in groups.items():
        newest = max(snaps, key=lambda s: s.time)
        src = newest.source
        iops = src.get("perf_iops")
        out[volume_id] = StoredVolume(
            volume_id=volume_id, name=str(src.get("volume_name") or newest.name or volume_id),
            project_id=str(src.get("project_id") or ""), zone=str(src.get("zone") or ""),
            size=int(src.get("size") or newest.bytes or 0),
            type=str(src.get("volume_type") or src.get("type") or "–"),
            perf_iops=int(iops) if isinstance(iops, int) else None,
            backup_count=len(snaps), last_backup=newest.time, last_snapshot_id=newest.id,
            tags=tuple(str(t) for t in (src.get("tags") or [])))
    return out


def age_of(iso: str, now: float) -> float:
    """Seconds from ``iso`` to ``now``; never negative (a clock behind the store's is 0)."""
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, now - when.timestamp())


def protection_of(volume: VolumeInfo, stored: StoredVolume | None, now: float,
                  stale_after: float = STALE_AFTER) -> Protection:
    """The state of one volume: from its newest backup in the store (``stored``)."""
    count = stored.backup_count if stored else 0
    last = stored.last_backup if stored else None
    age = age_of(last, now) if last else None
    if volume.status == GONE:
        return Protection(GONE, age, last, count, GONE_REASON)
    if not volume.backupable:
        return Protection(NOT_BACKUPABLE, age, last, count, volume.reason)
    if age is None:
        return Protection(NEVER, None, None, 0, "no backup in the store")
    if age > stale_after:
        return Protection(STALE, age, last, count,
                          f"last backup older than {human_age(stale_after)}")
    return Protection(OK, age, last, count, f"last backup within {human_age(stale_after)}")


def protection_from_status(status: VolumeStatus, now: float) -> Protection:
    """A volume's policy state (from :func:`engine.policies.status.volume_status`) as the
    drivers show it. The age is taken again at ``now``, and with it ok → due → overdue, by
    the same rule as the status (a tenth of ``every``, at most an hour, of slack): a screen
    left open for hours must not keep saying "ok"."""
    last = status.last_backup
    age = age_of(last, now) if last else None
    if status.state == "no policy":
        return Protection(NO_POLICY, age, last, status.backups, status.why)
    if status.state == "not backupable":
        return Protection(NOT_BACKUPABLE, age, last, status.backups, status.why, status.policy)
    every, grace = status.every_seconds, status.grace_seconds or 0.0
    if age is None or every is None:
        return Protection(status.state, age, last, status.backups, status.why, status.policy)
    period = f"every {human_age(every)}"
    from engine.policies.status import timely_state

    state = timely_state(age, every, grace)
    reason = (f"newest backup {human_age(age)} old, more than {period}"
              + (f" + grace {human_age(grace)}" if grace else "") if state == OVERDUE
              else f"newest backup {human_age(age)} old ({period})")
    return Protection(state, age, last, status.backups, reason, status.policy)


def gone_volumes(stored: dict[str, StoredVolume], listed: Iterable[str],
                 project_id: str | None = None, zone: str | None = None) -> list[VolumeInfo]:
    """Volumes the store knows that are not ``listed`` (ids), in that project and zone when
    given; marked gone, sorted by name."""
    present = set(listed)
    out = [s.as_volume() for s in stored.values() if s.volume_id not in present
           and (project_id is None or s.project_id == project_id)
           and (zone is None or s.zone == zone)]
    return sorted(out, key=lambda v: (v.name.lower(), v.id))


def human_age(seconds: float) -> str:
    """The largest unit only, as a glance needs it: 45s, 12m, 3h, 4d."""
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
