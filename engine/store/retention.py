"""Retention rules: which snapshots a keep policy keeps, and why — restic's `forget`, exactly.

Pure: no I/O, no store. The `forget` command groups snapshots (``group_snapshots``), applies a
``KeepPolicy`` to each group (``apply_policy``) and acts on the ``Decision``s.

The semantics are those of restic ≥ 0.16 (``internal/data/snapshot_policy.go``,
``ApplyPolicy``), so that people who know restic's flags get what they expect:
- snapshots are walked newest first; every rule counts on its own, and a snapshot is kept if
  any rule keeps it;
- ``last`` keeps the n newest; ``hourly``…``yearly`` keep the newest snapshot of each of the n
  newest calendar periods (hour, day, ISO week, month, year) in ``tz``, UTC unless told
  otherwise (restic uses each snapshot's recorded zone; ours are all recorded in UTC);
- the "oldest" rule (restic PR #4366): if a count is not used up when the walk reaches the
  oldest snapshot, that snapshot is kept too ("oldest daily snapshot"), so a young history is
  not cut short;
- ``-1`` means unlimited;
- ``within`` and ``within_<period>`` count back from the NEWEST snapshot's time (ignoring any
  in the future), not from now, so a store that stopped receiving backups keeps its history;
- ``tags`` keeps every snapshot that carries all tags of any one of its tag lists.

Reasons carry restic's own strings (``Reason.restic``, as in ``restic forget --json``'s
"matches") and a readable form (``str(reason)``: "daily 2026-11-30", "last", "within 10d").
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Generic, Literal, Protocol, TypeVar

from engine.errors import OperationError, UsageError

UTC = timezone.utc
UNLIMITED = -1

# ---------------------------------------------------------------------------------------------
# Durations: restic's "1y2m3d4h"


@dataclass(frozen=True)
class Duration:
    """A calendar duration: years, months and days move the calendar (Go's AddDate), hours
    move the clock."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @property
    def zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def __str__(self) -> str:
        # restic's Duration.String: the non-zero parts, largest first ("1y2m3d4h").
        parts = ((self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h"))
        return "".join(f"{n}{unit}" for n, unit in parts if n)


_UNITS = {"y": "years", "m": "months", "d": "days", "h": "hours"}
_PART = re.compile(r"([0-9]*)(.?)")
_ACCEPTED = "use whole numbers with units y, m, d, h, as in 1y2m3d4h"


def parse_duration(text: str) -> Duration:
    """Parse restic's duration syntax: parts like ``1y2m3d4h``, in any order.

    Stricter than restic's parser where it would silently do something odd: an empty string,
    a negative part (restic's forget rejects those too) and a repeated unit (restic keeps the
    last) are errors here."""
    s = text.strip()
    if not s:
        raise UsageError(f"empty duration: {_ACCEPTED}")
    values: dict[str, int] = {}
    pos = 0
    while pos < len(s):
        match = _PART.match(s, pos)
        assert match is not None  # the pattern matches the empty string
        digits, unit = match.groups()
        if not digits and s[pos] == "-":
            raise UsageError(f"invalid duration {text!r}: negative parts are not accepted; "
                             f"{_ACCEPTED}")
        if not digits:
            raise UsageError(f"invalid duration {text!r}: expected a number at {s[pos:]!r}; "
                             f"{_ACCEPTED}")
        if unit not in _UNITS:
            found = f"unit {unit!r}" if unit else "no unit"
            raise UsageError(f"invalid duration {text!r}: {found} after {digits}; {_ACCEPTED}")
        if _UNITS[unit] in values:
            raise UsageError(f"invalid duration {text!r}: unit {unit!r} given twice; "
                             f"{_ACCEPTED}")
        values[_UNITS[unit]] = int(digits)
        pos = match.end()
    return Duration(**values)


def parse_count(text: str) -> int:
    """A --keep-<rule> count: a whole number ≥ 0, or "unlimited" (-1), as restic takes it."""
    if text.strip() == "unlimited":
        return UNLIMITED
    if not text.strip().isascii() or not text.strip().isdigit():
        raise UsageError(f"invalid count {text!r}: use a whole number ≥ 0 or 'unlimited'")
    return int(text)


# ---------------------------------------------------------------------------------------------
# The policy


@dataclass(frozen=True)
class KeepPolicy:
    """restic's ExpirePolicy. Counts: 0 = rule off, -1 = unlimited. Durations: zero = off.

    ``tags`` holds tag lists as restic's ``--keep-tag`` takes them: "KEY=VALUE[,KEY=VALUE…]"
    (a tag with an empty value is written "KEY"); a snapshot is kept if it carries every tag
    of at least one list."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration = Duration()
    within_hourly: Duration = Duration()
    within_daily: Duration = Duration()
    within_weekly: Duration = Duration()
    within_monthly: Duration = Duration()
    within_yearly: Duration = Duration()
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The same checks as restic's verifyForgetOptions, so a policy object is always sane.
        for rule in _BUCKET_RULES:
            count = getattr(self, rule)
            if not isinstance(count, int) or count < UNLIMITED:
                raise UsageError(f"--keep-{rule} must be a number ≥ 0 or 'unlimited', "
                                 f"not {count!r}")
        for rule in ("within", *_WITHIN_RULES):
            d = getattr(self, rule)
            if min(d.years, d.months, d.days, d.hours) < 0:
                raise UsageError(f"--keep-{rule.replace('_', '-')} must not be negative, "
                                 f"not {d}")

    @property
    def empty(self) -> bool:
        """No rule at all: restic then refuses to forget by policy (and so should we)."""
        return (not any(getattr(self, rule) for rule in _BUCKET_RULES) and not self.tags
                and all(getattr(self, rule).zero for rule in ("within", *_WITHIN_RULES)))


# ---------------------------------------------------------------------------------------------
# Inputs and outputs


class Candidate(Protocol):
    """What apply_policy needs of a snapshot (SnapshotInfo fits)."""

    @property
    def id(self) -> str: ...

    @property
    def time(self) -> str | datetime: ...

    @property
    def tags(self) -> dict[str, str]: ...


class Groupable(Candidate, Protocol):
    """What group_snapshots needs besides: SnapshotInfo's name and source."""

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> dict: ...


@dataclass(frozen=True)
class SnapshotRef:
    """A plain snapshot for callers and tests that have no SnapshotInfo at hand."""

    id: str
    time: str | datetime
    tags: dict[str, str] = field(default_factory=dict)
    name: str = ""
    source: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Reason:
    """Why one rule keeps a snapshot. ``restic`` is restic's own string (its JSON "matches"),
    ``text`` a readable form that names the period ("daily 2026-11-30")."""

    rule: str    # "tags", "within", "last", "hourly"…"yearly", "within_hourly"…"within_yearly"
    restic: str
    text: str
    oldest: bool = False

    def __str__(self) -> str:
        return self.text


C = TypeVar("C", bound=Candidate)
G = TypeVar("G", bound=Groupable)


@dataclass(frozen=True)
class Decision(Generic[C]):
    snapshot: C
    time: datetime          # the snapshot's time, timezone-aware
    keep: bool
    reasons: tuple[Reason, ...] = ()

    @property
    def id(self) -> str:
        return self.snapshot.id

    @property
    def matches(self) -> list[str]:
        """The reasons as restic prints them."""
        return [r.restic for r in self.reasons]


# ---------------------------------------------------------------------------------------------
# Calendar periods


@dataclass(frozen=True)
class _Period:
    word: str                                  # restic's word: "daily"
    key: Callable[[datetime], tuple[int, ...]]  # equal keys = same period
    label: Callable[[datetime], str]           # readable name of the period


def _iso_week(t: datetime) -> tuple[int, int]:
    year, week, _ = t.isocalendar()  # the ISO year: 2021-01-03 is in 2020-W53, as Go's ISOWeek
    return year, week


_PERIODS = {
    "hourly": _Period("hourly", lambda t: (t.year, t.month, t.day, t.hour),
                      lambda t: t.strftime("%Y-%m-%d %H:00")),
    "daily": _Period("daily", lambda t: (t.year, t.month, t.day),
                     lambda t: t.strftime("%Y-%m-%d")),
    "weekly": _Period("weekly", _iso_week, lambda t: "%04d-W%02d" % _iso_week(t)),
    "monthly": _Period("monthly", lambda t: (t.year, t.month), lambda t: t.strftime("%Y-%m")),
    "yearly": _Period("yearly", lambda t: (t.year,), lambda t: "%04d" % t.year),
}
_BUCKET_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
_WITHIN_RULES = tuple(f"within_{p}" for p in _PERIODS)


# ---------------------------------------------------------------------------------------------
# Applying a policy


def apply_policy(snapshots: Iterable[C], policy: KeepPolicy, tz: tzinfo = UTC,
                 now: datetime | None = None) -> list[Decision[C]]:
    """Decide keep/remove for each snapshot of ONE group, newest first (ties keep input order,
    as restic's stable sort). An empty policy keeps everything, with no reasons.

    ``now`` only serves to ignore snapshots dated in the future when finding the newest one
    for the ``within`` rules, as restic does; it defaults to the current time."""
    timed = sorted(((_parse_time(s), s) for s in snapshots), key=lambda p: p[0], reverse=True)
    if policy.empty:
        return [Decision(s, t, True) for t, s in timed]
    newest = _newest_before(now or datetime.now(UTC), [t for t, _ in timed])
    walk = _Walk(policy, tz, newest, len(timed))
    return [walk.decide(nr, t, s) for nr, (t, s) in enumerate(timed)]


def would_remove_all(decisions: Sequence[Decision]) -> bool:
    """True if a group has snapshots and the policy keeps none: the command refuses that."""
    return bool(decisions) and not any(d.keep for d in decisions)


class _Walk:
    """One newest-to-oldest pass over a group: the counters and "last period seen" of every
    rule, as restic's ApplyPolicy keeps them."""

    def __init__(self, policy: KeepPolicy, tz: tzinfo, newest: datetime | None,
                 size: int) -> None:
        self.policy = policy
        self.tz = tz
        self.size = size
        self.counts = {rule: getattr(policy, rule) for rule in _BUCKET_RULES}
        self.last_seen: dict[str, object] = {}
        # rule -> cutoff time, for the within rules that are on (None: no cutoff at all)
        self.cutoffs = {rule: _cutoff(newest, getattr(policy, rule), tz)
                        for rule in ("within", *_WITHIN_RULES)
                        if not getattr(policy, rule).zero}

    def decide(self, nr: int, time: datetime, snapshot: C) -> Decision[C]:
        local = time.astimezone(self.tz)
        oldest = nr == self.size - 1
        reasons = [*self._tags(snapshot), *self._within(time),
                   *self._buckets(nr, local, oldest), *self._within_buckets(time, local, oldest)]
        return Decision(snapshot, time, bool(reasons), tuple(reasons))

    def _tags(self, snapshot: Candidate) -> list[Reason]:
        have = _tag_strings(snapshot.tags)
        reasons = []
        for raw in self.policy.tags:
            wanted = _split_tag_list(raw)
            if _has_tags(have, wanted):
                shown = ", ".join(wanted)
                reasons.append(Reason("tags", f"has tags [{shown}]", f"tags {shown}"))
        return reasons

    def _within(self, time: datetime) -> list[Reason]:
        if not self._is_within("within", time):
            return []
        d = self.policy.within
        return [Reason("within", f"within {d}", f"within {d}")]

    def _buckets(self, nr: int, local: datetime, oldest: bool) -> list[Reason]:
        reasons = []
        for rule in _BUCKET_RULES:
            if self.counts[rule] == 0:  # off, or used up
                continue
            # "last" counts snapshots, not periods: every snapshot is a period of its own.
            key: object = nr if rule == "last" else _PERIODS[rule].key(local)
            reason = self._take(rule, key, oldest, local, within="")
            if reason is None:
                continue
            if self.counts[rule] > 0:
                self.counts[rule] -= 1
            reasons.append(reason)
        return reasons

    def _within_buckets(self, time: datetime, local: datetime, oldest: bool) -> list[Reason]:
        reasons = []
        for rule in _WITHIN_RULES:
            if not self._is_within(rule, time):
                continue
            key = _PERIODS[rule.removeprefix("within_")].key(local)
            reason = self._take(rule, key, oldest, local, within=str(getattr(self.policy, rule)))
            if reason is not None:
                reasons.append(reason)
        return reasons

    def _take(self, rule: str, key: object, oldest: bool, local: datetime,
              within: str) -> Reason | None:
        """Keep the first snapshot met of each period; and the oldest snapshot of the group
        even if its period already has one (the rule still had room: restic's "oldest")."""
        same_period = self.last_seen.get(rule) == key
        if same_period and not oldest:
            return None
        self.last_seen[rule] = key
        return _reason(rule, local, oldest=same_period, within=within)

    def _is_within(self, rule: str, time: datetime) -> bool:
        if rule not in self.cutoffs:  # the rule is off
            return False
        cutoff = self.cutoffs[rule]
        return cutoff is None or time > cutoff  # strictly after, as Go's Time.After


def _reason(rule: str, local: datetime, oldest: bool, within: str) -> Reason:
    prefix = "oldest " if oldest else ""
    if rule == "last":
        return Reason(rule, f"{prefix}last snapshot", f"{prefix}last", oldest)
    period = _PERIODS[rule.removeprefix("within_")]
    label = period.label(local)
    if within:
        return Reason(rule, f"{prefix}{period.word} within {within}",
                      f"{prefix}{period.word} {label} within {within}", oldest)
    return Reason(rule, f"{prefix}{period.word} snapshot", f"{prefix}{period.word} {label}",
                  oldest)


# ---------------------------------------------------------------------------------------------
# Time


def _parse_time(snapshot: Candidate) -> datetime:
    raw = snapshot.time
    if isinstance(raw, str):
        try:
            raw = datetime.fromisoformat(raw)
        except ValueError:
            raise OperationError(f"snapshot {snapshot.id} has an unreadable time {raw!r}") from None
    # The store records UTC; a time without a zone can only mean that.
    return raw if raw.tzinfo is not None else raw.replace(tzinfo=UTC)


def _newest_before(now: datetime, times: Sequence[datetime]) -> datetime | None:
    """The newest time that is not in the future (restic's findLatestTimestamp). None when
    all are in the future: restic then counts from year 1, so everything is "within"."""
    past = [t for t in times if t < now]
    return max(past) if past else None


def _cutoff(newest: datetime | None, d: Duration, tz: tzinfo) -> datetime | None:
    """newest − d, as restic computes it: Go's AddDate(-y, -m, -d) on the wall clock in ``tz``
    (so 31 March − 1 month is 2 or 3 March, not 28 February), then minus the hours as elapsed
    time. None when that falls before year 1: nothing is older, so everything is within.
    In a zone with DST, a wall time in a gap or a fold is read with fold=0 (where Go's choice is
    unspecified); UTC, the default, has neither."""
    if newest is None:
        return None
    wall = newest.astimezone(tz)
    try:
        shifted = _add_date(wall, -d.years, -d.months, -d.days)
        return shifted.astimezone(UTC) - timedelta(hours=d.hours)
    except (ValueError, OverflowError):
        return None


def _add_date(t: datetime, years: int, months: int, days: int) -> datetime:
    """Go's Time.AddDate: shift year and month, then let the day overflow into the next month
    (normalisation), keeping the wall-clock time in t's zone."""
    month0 = t.month - 1 + months
    year = t.year + years + month0 // 12
    day = date(year, month0 % 12 + 1, 1) + timedelta(days=t.day - 1 + days)
    return datetime.combine(day, t.timetz())


# ---------------------------------------------------------------------------------------------
# Tags


def _tag_strings(tags: dict[str, str]) -> set[str]:
    """Our tags as restic-style strings: "KEY=VALUE", or "KEY" when the value is empty (how
    a Scaleway tag without "=" is stored)."""
    return {f"{k}={v}" if v else k for k, v in tags.items()}


def _split_tag_list(raw: str) -> list[str]:
    # restic's splitTagList: comma-separated, whitespace around each tag dropped.
    return [t.strip() for t in raw.split(",")]


def _has_tags(have: set[str], wanted: list[str]) -> bool:
    # restic's HasTags, including its quirk: an empty tag in the list matches an untagged
    # snapshot outright (`--keep-tag ''` keeps snapshots without tags).
    for tag in wanted:
        if tag == "" and not have:
            return True
        if tag not in have:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Grouping


GroupBy = Literal["volume", "name", "none"]


@dataclass(frozen=True)
class GroupKey:
    """What a group's snapshots share: a source volume (id, zone), an image name, or nothing."""

    kind: Literal["volume", "name", "all"]
    volume_id: str = ""
    zone: str = ""
    name: str = ""

    @property
    def label(self) -> str:
        if self.kind == "volume":
            return f"volume {self.volume_id} ({self.zone})" if self.zone else \
                f"volume {self.volume_id}"
        if self.kind == "name":
            return f"name {self.name}"
        return "all snapshots"


def group_snapshots(snapshots: Iterable[G], by: GroupBy = "volume") -> dict[GroupKey, list[G]]:
    """Split snapshots into the groups a policy is applied to, in order of first appearance.

    "volume" (the default): volume backups by source volume (id and zone); snapshots without
    a source volume (image backups) by name. "name": by name. "none": one group."""
    if by not in ("volume", "name", "none"):
        raise UsageError(f"--group-by takes volume, name or none, not {by!r}")
    groups: dict[GroupKey, list[G]] = {}
    for snapshot in snapshots:
        groups.setdefault(_group_key(snapshot, by), []).append(snapshot)
    return groups


def _group_key(snapshot: Groupable, by: GroupBy) -> GroupKey:
    if by == "none":
        return GroupKey("all")
    source = snapshot.source or {}
    volume_id = source.get("volume_id")
    if by == "volume" and volume_id:
        return GroupKey("volume", volume_id=str(volume_id), zone=str(source.get("zone") or ""))
    return GroupKey("name", name=snapshot.name)
