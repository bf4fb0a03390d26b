"""The kinds of job, each with its parameters as a dataclass that round-trips through JSON.

A driver builds a kind's parameters, turns them into a :class:`engine.jobs.JobSpec` with
:func:`spec`, and hands that to a runner (in this process or the daemon's); ``Session.execute``
turns the spec back into the parameters with :func:`params_of` and runs the typed call.
Paths are absolute by the time they are in a spec: the job may run in another process, in
another working directory.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.errors import UsageError
from engine.jobs import JSON, JobSpec

P = TypeVar("P")


@dataclass(frozen=True)
class BackupParams:
    """Back up one SBS volume (the backup flow)."""

    volume_id: str
    zone: str
    volume_name: str = ""
    bucket: str | None = None
    keep: bool | None = None  # keep the SBS snapshot and the staging object
    time: str | None = None  # record the snapshot at this ISO 8601 time instead of now

    def title(self) -> str:
        return f"backup {self.volume_name or self.volume_id}"


@dataclass(frozen=True)
class RestoreParams:
    """Restore a store snapshot into a new SBS volume (the restore flow). ``size`` in bytes."""

    snapshot: str
    zone: str
    project_id: str | None = None
    name: str | None = None
    size: int | None = None
    iops: int | None = None
    bucket: str | None = None
    # a name already taken: False refuses (exit 2), True restores as <name>-restored-YYYYMMDD
    rename_on_clash: bool = False

    def title(self) -> str:
        return f"restore → {self.name}" if self.name else f"restore {self.snapshot}"


@dataclass(frozen=True)
class BackupImageParams:
    """Back up a local image file."""

    path: str
    name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    time: str | None = None  # record the snapshot at this ISO 8601 time instead of now

    def title(self) -> str:
        return f"backup-image {self.name or self.path}"


@dataclass(frozen=True)
class RestoreImageParams:
    """Write a snapshot's image to a local file."""

    snapshot: str
    out: str
    force: bool = False  # replace an existing file
    sha256: bool = False  # also compute the image's SHA-256 (one more pass, in order)

    def title(self) -> str:
        return f"restore-image {self.snapshot} → {self.out}"


@dataclass(frozen=True)
class CheckParams:
    read_data: bool = False

    def title(self) -> str:
        return "check, reading all data" if self.read_data else "check"


@dataclass(frozen=True)
class RestoreFilesParams:
    """Copy a file or a tree out of a backed-up volume into a local folder."""

    snapshot: str
    path: str
    to: str

    def title(self) -> str:
        return f"restore-files {self.snapshot} {self.path}"


@dataclass(frozen=True)
class ForgetParams:
    """Remove snapshots: the named ones, or those a keep policy does not keep (restic's
    rules). Counts: 0 = rule off, -1 = unlimited; durations in restic's syntax ("1y2m3d4h"),
    "" = off; ``keep_tags`` as restic's --keep-tag ("KEY=VALUE[,KEY=VALUE…]")."""

    snapshots: list[str] = field(default_factory=list)
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: str = ""
    keep_within_hourly: str = ""
    keep_within_daily: str = ""
    keep_within_weekly: str = ""
    keep_within_monthly: str = ""
    keep_within_yearly: str = ""
    keep_tags: list[str] = field(default_factory=list)
    group_by: str = "volume"
    tz: str = "UTC"
    dry_run: bool = False
    prune: bool = False
    max_unused: float = 5.0

    def title(self) -> str:
        what = (f"{len(self.snapshots)} snapshot{'s' * (len(self.snapshots) != 1)}"
                if self.snapshots else "by policy")
        return f"forget {what}" + (" and prune" if self.prune else "") + \
            (" (dry run)" if self.dry_run else "")

    def policy(self):  # -> engine.store.retention.KeepPolicy (imported when needed)
        """The keep policy; a UsageError names a bad count or duration."""
        from engine.store.retention import KeepPolicy, parse_duration

        def duration(flag: str, text: str):  # noqa: ANN202
            if not text:
                return parse_duration("0h")
            try:
                return parse_duration(text)
            except UsageError as exc:
                raise UsageError(f"--{flag}: {exc}") from None

        return KeepPolicy(
            last=self.keep_last, hourly=self.keep_hourly, daily=self.keep_daily,
            weekly=self.keep_weekly, monthly=self.keep_monthly, yearly=self.keep_yearly,
            within=duration("keep-within", self.keep_within),
            within_hourly=duration("keep-within-hourly", self.keep_within_hourly),
            within_daily=duration("keep-within-daily", self.keep_within_daily),
            within_weekly=duration("keep-within-weekly", self.keep_within_weekly),
            within_monthly=duration("keep-within-monthly", self.keep_within_monthly),
            within_yearly=duration("keep-within-yearly", self.keep_within_yearly),
            tags=tuple(self.keep_tags))

    def timezone(self):  # -> datetime.tzinfo
        """``tz`` as a zone: "UTC" or an IANA name such as "Europe/Paris"."""
        from datetime import timezone
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if self.tz.upper() in ("UTC", "Z", ""):
            return timezone.utc
        try:
            return ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"unknown time zone {self.tz!r}: give UTC or an IANA name such "
                             "as Europe/Paris") from None


@dataclass(frozen=True)
class PruneParams:
    """Give back the space of data no snapshot needs (``max_unused``: percent of a pack that
    may stay unneeded before the pack is repacked)."""

    dry_run: bool = False
    max_unused: float = 5.0

    def title(self) -> str:
        return "prune" + (" (dry run)" if self.dry_run else "")


KINDS: dict[str, type] = {
    "backup": BackupParams,
    "restore": RestoreParams,
    "backup-image": BackupImageParams,
    "restore-image": RestoreImageParams,
    "check": CheckParams,
    "restore-files": RestoreFilesParams,
    "forget": ForgetParams,
    "prune": PruneParams,
}


def kind_of(params: object) -> str:
    for kind, cls in KINDS.items():
        if type(params) is cls:
            return kind
    raise TypeError(f"not the parameters of a job kind: {type(params).__name__}")


def spec(params: Any, title: str = "") -> JobSpec:
    """The JobSpec of one kind's parameters."""
    doc: dict[str, JSON] = dataclasses.asdict(params)
    return JobSpec(kind_of(params), doc, title or params.title())


def params_of(job: JobSpec) -> Any:
    """The typed parameters of a spec; a bad spec (unknown kind or field) is a UsageError."""
    cls = KINDS.get(job.kind)
    if cls is None:
        raise UsageError(f"unknown job kind {job.kind!r}: one of {', '.join(KINDS)}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(job.params) - names
    if unknown:
        what = "parameter" if len(unknown) == 1 else "parameters"
        raise UsageError(f"job {job.kind}: unknown {what} {', '.join(sorted(unknown))}")
    try:
        return cls(**job.params)
    except TypeError as exc:
        raise UsageError(f"job {job.kind}: {exc}") from None
