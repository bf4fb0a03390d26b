"""The policy parts of the settings file, checked: ``[labels]``, ``[policies.NAME]``, ``[run]``.

Each mistake is one line that names the file, the line and the key, and says what to write
(a :class:`ConfigError`, exit 2). tomllib keeps no positions, so :class:`Lines` finds a key's
line in the text itself: table headers and ``key =`` lines, which is all these tables need.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from engine.errors import UsageError
from engine.policies.durations import parse_period
from engine.settings import Settings
from engine.store.retention import KeepPolicy, parse_duration

MATCH_KEYS = ("environment", "data_class", "project", "zone", "tag", "volume")
RULE_MATCH_KEYS = ("project", "zone", "volume", "tag")
POLICY_KEYS = ("match", "every", "keep", "verify", "grace")
KEEP_COUNTS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
KEEP_WITHIN = ("within", "within_hourly", "within_daily", "within_weekly", "within_monthly",
               "within_yearly")
LABEL_KEYS = ("environment_tag", "data_class_tag", "rules")
RUN_KEYS = ("prune_above", "max_unused", "jobs")
DEFAULT_ENVIRONMENT_TAGS = ("environment", "env")
DEFAULT_DATA_CLASS_TAGS = ("data-class", "data_class")


class ConfigError(UsageError):
    """A mistake in the settings file (exit 2)."""


@dataclass(frozen=True)
class Match:
    """What a policy (or a label rule) applies to: every given field must match, a field
    matches when any of its patterns does (shell globs, as in ``db-*``)."""

    environment: tuple[str, ...] = ()
    data_class: tuple[str, ...] = ()
    project: tuple[str, ...] = ()   # a project's name or id
    zone: tuple[str, ...] = ()
    tag: tuple[str, ...] = ()       # a whole Scaleway tag, "backup=nightly"
    volume: tuple[str, ...] = ()    # a volume's name (or id)

    def given(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name)]

    def text(self) -> str:
        return ", ".join(f"{k}={'|'.join(v)}" for k, v in self.given())


@dataclass(frozen=True)
class Policy:
    name: str
    match: Match
    every: timedelta                 # how old the newest backup may get (the RPO)
    keep: KeepPolicy | None = None   # forget's rules for this policy's volumes
    keep_text: dict[str, int | str] = field(default_factory=dict)
    verify: timedelta | None = None  # check --read-data at least this often
    grace: timedelta = timedelta()   # how late a backup may be before it is overdue
    where: str = ""                  # "file:line" of its table, for messages
    match_where: str = ""            # "file:line" of its match rule


@dataclass(frozen=True)
class LabelRule:
    match: Match
    environment: str = ""
    data_class: str = ""
    where: str = ""


@dataclass(frozen=True)
class LabelSettings:
    environment_tags: tuple[str, ...] = DEFAULT_ENVIRONMENT_TAGS
    data_class_tags: tuple[str, ...] = DEFAULT_DATA_CLASS_TAGS
    rules: tuple[LabelRule, ...] = ()
    environment: str = ""   # the global defaults (the settings' environment, data_class)
    data_class: str = ""


@dataclass(frozen=True)
class RunSettings:
    prune_above: float = 10.0  # prune when unused data passes this share (%) of the store
    max_unused: float = 5.0    # prune's own --max-unused
    jobs: int = 2              # volumes backed up at once


@dataclass(frozen=True)
class PolicyConfig:
    path: str
    labels: LabelSettings
    policies: tuple[Policy, ...]
    run: RunSettings

    def policy(self, name: str) -> Policy:
        for policy in self.policies:
            if policy.name == name:
                return policy
        known = ", ".join(p.name for p in self.policies) or "none are defined"
        raise UsageError(f"no policy {name!r} in {self.path or 'the settings file'} "
                         f"(policies: {known})")


def load_config(settings: Settings) -> PolicyConfig:
    """The checked policy configuration of ``settings`` (read from ``settings.path``)."""
    text = ""
    if settings.path:
        try:
            text = Path(settings.path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
    lines = _Reader(settings.path or "settings", Lines(text))
    _no_unknown_top_level(settings, text, lines)
    labels = _labels(settings, lines)
    policies = _policies(settings.policies, lines)
    return PolicyConfig(settings.path, labels, policies, _run(settings.run, lines))


# ---------------------------------------------------------------------------------------------
# Finding lines

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r'^\s*("[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+)\s*[.=]')


def _split_dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', text)
    return tuple(next(p for p in groups if p) if any(groups) else "" for groups in parts)


class Lines:
    """Where keys are in a TOML text: each line's table (header path, array index) and key."""

    def __init__(self, text: str) -> None:
        self.entries: list[tuple[int, tuple[str, ...], int, str | None]] = []
        table: tuple[str, ...] = ()
        counts: dict[tuple[str, ...], int] = {}
        index = 0
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header and not line.lstrip().startswith("#"):
                table = _split_dotted(header.group(2))
                if header.group(1) == "[[":
                    counts[table] = counts.get(table, -1) + 1
                    index = counts[table]
                else:
                    index = 0
                self.entries.append((number, table, index, None))
                continue
            key = _KEY.match(line)
            if key:
                self.entries.append((number, table, index, key.group(1).strip("\"'")))

    def find(self, path: tuple[str | int, ...]) -> int:
        """The line of ``path`` (keys, with an int for an array of tables' index), or of the
        nearest table that holds it; 1 when nothing is found."""
        names = tuple(p for p in path if isinstance(p, str))
        index = next((p for p in path if isinstance(p, int)), 0)
        for split in range(len(names) - 1, -1, -1):
            table, key = names[:split], names[split]
            for number, t, i, k in self.entries:
                if t == table and i == index and k == key:
                    return number
            for number, t, i, k in self.entries:
                if t == names[:split + 1] and i == index and k is None:
                    return number
        return 1


@dataclass
class _Reader:
    path: str
    lines: Lines

    def error(self, path: tuple[str | int, ...], what: str) -> ConfigError:
        key = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)
        key = key.replace(".[", "[")
        return ConfigError(f"{self.path}:{self.lines.find(path)}: {key}: {what}")

    def where(self, path: tuple[str | int, ...]) -> str:
        return f"{self.path}:{self.lines.find(path)}"

    def table(self, value: Any, path: tuple[str | int, ...], allowed: tuple[str, ...]
              ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, "must be a table")
        for key in value:
            if key not in allowed:
                raise self.error((*path, key), f"unknown key: use one of {', '.join(allowed)}")
        return value

    def strings(self, value: Any, path: tuple[str | int, ...]) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or \
                not all(isinstance(v, str) and v for v in items):
            raise self.error(path, 'must be a text or a list of texts, as "production" or '
                                   '["production", "staging"]')
        return tuple(items)

    def period(self, value: Any, path: tuple[str | int, ...]) -> timedelta:
        try:
            return parse_period(value)
        except ValueError as exc:
            raise self.error(path, str(exc)) from None


# ---------------------------------------------------------------------------------------------
# The tables

def _no_unknown_top_level(settings: Settings, text: str, r: _Reader) -> None:
    import tomllib

    try:
        data = tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError:
        return  # load_settings has said so already
    known = {f.name for f in fields(Settings)} - {"path"}
    for key in data:
        if key not in known:
            raise r.error((key,), f"unknown key: use one of {', '.join(sorted(known))}")


def _labels(settings: Settings, r: _Reader) -> LabelSettings:
    raw = r.table(settings.labels, ("labels",), LABEL_KEYS)
    env_tags = (r.strings(raw["environment_tag"], ("labels", "environment_tag"))
                if "environment_tag" in raw else DEFAULT_ENVIRONMENT_TAGS)
    class_tags = (r.strings(raw["data_class_tag"], ("labels", "data_class_tag"))
                  if "data_class_tag" in raw else DEFAULT_DATA_CLASS_TAGS)
    rules = raw.get("rules", [])
    if not isinstance(rules, list):
        raise r.error(("labels", "rules"), "must be an array of tables: [[labels.rules]]")
    return LabelSettings(env_tags, class_tags,
                         tuple(_rule(rule, i, r) for i, rule in enumerate(rules)),
                         settings.environment, settings.data_class)


def _rule(raw: Any, index: int, r: _Reader) -> LabelRule:
    path: tuple[str | int, ...] = ("labels", "rules", index)
    raw = r.table(raw, path, (*RULE_MATCH_KEYS, "environment", "data_class"))
    match = Match(**{k: r.strings(raw[k], (*path, k)) for k in RULE_MATCH_KEYS if k in raw})
    if not match.given():
        raise r.error(path, f"a label rule needs at least one of {', '.join(RULE_MATCH_KEYS)}")
    labels = {k: raw[k] for k in ("environment", "data_class") if k in raw}
    for key, value in labels.items():
        if not isinstance(value, str) or not value:
            raise r.error((*path, key), "must be a non-empty text")
    if not labels:
        raise r.error(path, "a label rule sets environment, data_class or both")
    return LabelRule(match, labels.get("environment", ""), labels.get("data_class", ""),
                     r.where(path))


def _policies(raw: dict[str, Any], r: _Reader) -> tuple[Policy, ...]:
    if "" in raw and not isinstance(raw[""], dict):
        raise r.error(("policies",), "must be a table of policies: [policies.NAME]")
    return tuple(_policy(name, body, r) for name, body in raw.items())


def _policy(name: str, raw: Any, r: _Reader) -> Policy:
    path: tuple[str | int, ...] = ("policies", name)
    raw = r.table(raw, path, POLICY_KEYS)
    match_raw = r.table(raw.get("match", {}), (*path, "match"), MATCH_KEYS)
    match = Match(**{k: r.strings(v, (*path, "match", k)) for k, v in match_raw.items()})
    if not match.given():
        raise r.error(path, 'has no match rule: add match = { environment = "production" } '
                            '(or volume = "*" for every volume)')
    if "every" not in raw:
        raise r.error(path, 'has no every: say how old the newest backup may get, as '
                            'every = "24h"')
    every = r.period(raw["every"], (*path, "every"))
    keep, keep_text = _keep(raw, path, r)
    verify = r.period(raw["verify"], (*path, "verify")) if "verify" in raw else None
    grace = (r.period(raw["grace"], (*path, "grace")) if "grace" in raw
             else min(every / 4, timedelta(hours=6)))
    return Policy(name, match, every, keep, keep_text, verify, grace, r.where(path),
                  r.where((*path, "match")))


def _keep(raw: dict[str, Any], path: tuple[str | int, ...], r: _Reader
          ) -> tuple[KeepPolicy | None, dict[str, int | str]]:
    if "keep" not in raw:
        return None, {}
    keep_path = (*path, "keep")
    body = r.table(raw["keep"], keep_path, (*KEEP_COUNTS, *KEEP_WITHIN))
    counts: dict[str, int] = {}
    for key in KEEP_COUNTS:
        if key in body:
            value = body[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise r.error((*keep_path, key), "must be a whole number ≥ 0 (-1: unlimited)")
            counts[key] = value
    withins: dict[str, Any] = {}
    for key in KEEP_WITHIN:
        if key in body:
            try:
                withins[key] = parse_duration(str(body[key]))
            except UsageError as exc:
                raise r.error((*keep_path, key), str(exc)) from None
    policy = KeepPolicy(**counts, **withins)
    if policy.empty:
        raise r.error(keep_path, "has no rule: give at least one, as keep = { last = 7 }")
    return policy, dict(body)


def _run(raw: dict[str, Any], r: _Reader) -> RunSettings:
    raw = r.table(raw, ("run",), RUN_KEYS)
    values: dict[str, Any] = {}
    for key in ("prune_above", "max_unused"):
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not 0 <= value <= 100:
                raise r.error(("run", key), "must be a percentage from 0 to 100")
            values[key] = float(value)
    if "jobs" in raw:
        if isinstance(raw["jobs"], bool) or not isinstance(raw["jobs"], int) or raw["jobs"] < 1:
            raise r.error(("run", "jobs"), "must be a whole number ≥ 1")
        values["jobs"] = raw["jobs"]
    return RunSettings(**values)
