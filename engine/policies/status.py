"""Whether each volume meets its policy, in one word: ok, due, overdue, no policy, not
backupable — with the figures behind the word, for the CLI's `status` and the app.

A volume is *due* when its newest backup is older than the policy's ``every`` less a little
slack (a tenth of ``every``, at most an hour: a timer that fires every 24 h must not find a
backup 23 h 59 min old "not due" and let it reach 48 h), or when it has none; *overdue* when
the newest backup is older than ``every`` plus the policy's ``grace``, or there is none at all.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from engine.policies.config import Policy
from engine.policies.durations import show_period
from engine.policies.survey import Survey, SurveyedVolume

State = Literal["ok", "due", "overdue", "no policy", "not backupable"]
STATES: tuple[State, ...] = ("ok", "due", "overdue", "no policy", "not backupable")
HISTORY = 30  # backups whose new bytes are given (a sparkline's worth)


@dataclass
class VolumeStatus:
    volume_id: str
    volume_name: str
    project_id: str
    zone: str
    environment: str
    data_class: str
    policy: str | None
    state: State
    last_backup: str | None          # ISO time of the newest backup
    age_seconds: float | None        # how old the newest backup is
    every_seconds: float | None      # the policy's every, grace (seconds)
    grace_seconds: float | None
    last_verified: str | None        # when a check --read-data last covered its backups
    verify_due: bool                 # the policy's verify period has passed since
    backups: int
    new_bytes: list[int] = field(default_factory=list)  # stored bytes of each backup, oldest first
    why: str = ""                    # the state in words, one line

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def timely_state(age: float, every: float, grace: float) -> State:
    """ok, due or overdue for a newest backup ``age`` seconds old: the one rule of run, status
    and the app. Due a little before ``every`` (a tenth of it, at most an hour): an hourly timer
    would otherwise find a 23h59m-old daily backup not due and let it reach 48h."""
    if age > every + grace:
        return "overdue"
    if age >= every - min(every / 10, 3600.0):
        return "due"
    return "ok"


def is_due(policy: Policy, newest: str | None, now: datetime) -> bool:
    if newest is None:
        return True
    age = (now - parse_time(newest)).total_seconds()
    return timely_state(age, policy.every.total_seconds(), policy.grace.total_seconds()) != "ok"


def verify_due(policy: Policy, last_verified: str | None, now: datetime) -> bool:
    return policy.verify is not None and (last_verified is None or
                                          now - parse_time(last_verified) >= policy.verify)


def volume_status(v: SurveyedVolume, now: datetime) -> VolumeStatus:
    policy, newest = v.policy, v.newest
    age = (now - parse_time(newest.time)).total_seconds() if newest else None
    state: State
    if policy is None:
        state, why = "no policy", "no policy matches it"
    elif not v.volume.backupable:
        state, why = "not backupable", v.volume.reason
    elif newest is None:
        state, why = "overdue", "never backed up"
    else:
        assert age is not None
        state = timely_state(age, policy.every.total_seconds(), policy.grace.total_seconds())
        why = (f"newest backup {_ago(age)} old, more than every {show_period(policy.every)} "
               f"+ grace {show_period(policy.grace)}" if state == "overdue" else
               f"newest backup {_ago(age)} old (every {show_period(policy.every)})")
    return VolumeStatus(
        v.volume.id, v.volume.name, v.volume.project_id, v.volume.zone, v.labels.environment,
        v.labels.data_class, policy.name if policy else None, state,
        newest.time if newest else None, age,
        policy.every.total_seconds() if policy else None,
        policy.grace.total_seconds() if policy else None, v.last_verified,
        verify_due(policy, v.last_verified, now) if policy and newest else False,
        len(v.snapshots), [s.stored_bytes for s in v.snapshots[-HISTORY:]], why)


def statuses(survey: Survey, now: datetime | None = None) -> list[VolumeStatus]:
    now = now or datetime.now(timezone.utc)
    return [volume_status(v, now) for v in survey.volumes]


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return show_period(timedelta(seconds=max(0, int(seconds)))) if seconds >= 1 else "0s"
