"""Which policy a volume takes, and why: the first policy in file order whose match rule
matches it. A match rule's fields must all match; a field matches when any of its patterns
does (shell globs, case-sensitive)."""
from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from engine.policies.config import Match, Policy


@dataclass(frozen=True)
class VolumeFacts:
    """What a match rule can look at."""

    id: str
    name: str
    project_id: str
    project_name: str
    zone: str
    tags: list[str] = field(default_factory=list)
    environment: str = ""
    data_class: str = ""


@dataclass(frozen=True)
class Assignment:
    policy: Policy | None
    reasons: tuple[str, ...] = ()   # why it matched: "environment=production matches production"
    also: tuple[str, ...] = ()      # later policies that match too (the first one wins)


def _any(patterns: tuple[str, ...], values: list[str]) -> str | None:
    for pattern in patterns:
        for value in values:
            if value and fnmatchcase(value, pattern):
                return f"{value} matches {pattern}" if value != pattern else value
    return None


def match_reasons(match: Match, facts: VolumeFacts) -> list[str] | None:
    """Why ``match`` matches the volume, field by field; None when it does not."""
    values = {"environment": [facts.environment], "data_class": [facts.data_class],
              "project": [facts.project_name, facts.project_id], "zone": [facts.zone],
              "tag": list(facts.tags), "volume": [facts.name, facts.id]}
    reasons = []
    for key, patterns in match.given():
        hit = _any(patterns, values[key])
        if hit is None:
            return None
        reasons.append(f"{key} {hit}")
    return reasons


def assign(policies: tuple[Policy, ...], facts: VolumeFacts) -> Assignment:
    chosen: Policy | None = None
    reasons: list[str] = []
    also: list[str] = []
    for policy in policies:
        found = match_reasons(policy.match, facts)
        if found is None:
            continue
        if chosen is None:
            chosen, reasons = policy, found
        else:
            also.append(policy.name)
    return Assignment(chosen, tuple(reasons), tuple(also))
