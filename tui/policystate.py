"""The policies as the app shows them: each volume's policy state, and each policy's compliance.

Built from what the main screen already holds (the whole inventory, the store's snapshots), so
no second listing of the organization: the same survey and status rules as `strongroom
status` (engine.policies), only fed by the app. A mistake in the settings file is kept as
``problem`` (one line) and the app falls back to the plain backup-age states.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from engine.policies.config import Policy, load_config
from engine.policies.durations import show_period
from engine.policies.status import STATES, VolumeStatus, statuses
from engine.policies.survey import build_survey
from engine.scaleway.inventory import VolumeInfo
from engine.session import Session
from engine.store import SnapshotInfo


@dataclass
class PolicyFacts:
    policies: list[Policy] = field(default_factory=list)   # the settings file's, in its order
    statuses: dict[str, VolumeStatus] = field(default_factory=dict)  # by volume id
    reasons: dict[str, tuple[str, ...]] = field(default_factory=dict)  # why its policy matched
    problem: str = ""            # the settings file's mistake, one line
    path: str = ""               # the settings file

    @property
    def active(self) -> bool:
        """Policies are defined (and readable): their states replace the backup-age ones."""
        return bool(self.policies) and not self.problem

    def counts(self, policy: str) -> Counter[str]:
        """State word → volumes of ``policy`` in that state."""
        return Counter(s.state for s in self.statuses.values() if s.policy == policy)

    def summary(self, policy: Policy) -> str:
        """``12 volumes · 11 ok · 1 overdue``."""
        counts = self.counts(policy.name)
        total = sum(counts.values())
        parts = [f"{total} volume{'s' if total != 1 else ''}"]
        parts += [f"{counts[s]} {s}" for s in STATES if counts[s]]
        return " · ".join(parts)


def policy_terms(policy: Policy) -> tuple[str, str, str]:
    """every, keep, verify, as the settings file says them."""
    keep = " ".join(f"{k}={v}" for k, v in policy.keep_text.items()) or "all"
    verify = show_period(policy.verify) if policy.verify else "–"
    every = show_period(policy.every)
    if policy.grace:
        every += f" (+{show_period(policy.grace)} grace)"
    return every, keep, verify


def one_line(text: str) -> str:
    return " ".join(text.split())


def policy_facts(session: Session, volumes: list[VolumeInfo], project_names: dict[str, str],
                 snapshots: list[SnapshotInfo], now: datetime | None = None) -> PolicyFacts:
    """Every volume's policy state (blocking: the store's verification records are read)."""
    from engine.errors import UsageError
    from engine.policies.verification import verified_times

    path = session.settings.path
    try:
        config = load_config(session.settings)
        if not config.policies:
            return PolicyFacts(path=path)
        try:
            verified = verified_times(session.store())
        except Exception:  # no store yet, or no passphrase: the snapshots' own marks only
            verified = {}
        survey = build_survey(config, volumes, project_names, snapshots, verified)
        survey.require_matches()
        found = statuses(survey, now or datetime.now(timezone.utc))
    except UsageError as exc:
        return PolicyFacts(problem=one_line(str(exc)), path=path)
    reasons = {v.volume.id: v.assignment.reasons for v in survey.volumes}
    return PolicyFacts(list(config.policies), {s.volume_id: s for s in found}, reasons,
                       path=path)
