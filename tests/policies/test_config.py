"""The policy parts of the settings file: what they mean, and one-line errors that name the
file, the line and the key (exit 2) for each kind of mistake."""
from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from engine.errors import UsageError
from engine.policies.config import load_config
from engine.policies.durations import parse_period, show_period
from engine.policies.labels import volume_labels
from engine.policies.policy import VolumeFacts, assign
from engine.policies.run import Shard
from engine.settings import load_settings, save_settings, settings_path

GOOD = """\
environment = "development"   # the global default
data_class = "internal"

[labels]
data_class_tag = ["data-class", "data_class"]

[[labels.rules]]
project = "web-*"
environment = "production"

[[labels.rules]]
volume = "db-*"
zone = "fr-par-1"
data_class = "pii"

[policies.prod-daily]
match = { environment = "production" }   # the first policy in file order wins
every = "24h"
keep = { last = 3, daily = 7, weekly = 4, monthly = 12 }
verify = "7d"

[policies.everything]
match = { volume = "*" }
every = "1w"
"""


def _write(text: str) -> Path:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _facts(name: str, project: str = "other", zone: str = "fr-par-1",
           tags: tuple[str, ...] = ()) -> VolumeFacts:
    return VolumeFacts(f"id-{name}", name, f"pid-{project}", project, zone, list(tags))


def test_labels_come_from_tags_then_rules_then_the_default() -> None:
    _write(GOOD)
    config = load_config(load_settings())
    tagged = volume_labels(_facts("web", "web-shop", tags=("environment=staging",
                                                            "data-class=public")), config.labels)
    assert (tagged.environment, tagged.data_class) == ("staging", "public")
    assert tagged.environment_from == "tag environment=staging"
    ruled = volume_labels(_facts("db-main", "web-shop"), config.labels)
    assert (ruled.environment, ruled.data_class) == ("production", "pii")
    assert ruled.environment_from.endswith("settings.toml:7")  # the first [[labels.rules]]
    elsewhere = volume_labels(_facts("db-main", zone="nl-ams-1"), config.labels)
    assert (elsewhere.environment, elsewhere.data_class) == ("development", "internal")
    assert elsewhere.environment_from == "default"


def test_the_first_matching_policy_in_file_order_wins_and_says_why() -> None:
    _write(GOOD)
    config = load_config(load_settings())
    facts = _facts("web", tags=("environment=production",))
    facts = VolumeFacts(**{**facts.__dict__, "environment": "production"})
    chosen = assign(config.policies, facts)
    assert chosen.policy is not None and chosen.policy.name == "prod-daily"
    assert chosen.reasons == ("environment production",) and chosen.also == ("everything",)
    prod = config.policy("prod-daily")
    assert prod.every.total_seconds() == 86400 and prod.verify.days == 7  # type: ignore[union-attr]
    assert prod.keep is not None and (prod.keep.last, prod.keep.monthly) == (3, 12)
    assert prod.where.endswith("settings.toml:16")
    other = assign(config.policies, VolumeFacts(**{**facts.__dict__, "environment": "dev"}))
    assert other.policy is not None and other.policy.name == "everything"


def test_saving_the_settings_keeps_the_policies() -> None:
    path = _write(GOOD)
    settings = load_settings()
    settings.theme = "nord"
    save_settings(settings, path)
    again = load_config(load_settings())
    assert [p.name for p in again.policies] == ["prod-daily", "everything"]
    assert len(again.labels.rules) == 2


@pytest.mark.parametrize("text, line, key, words", [
    ('[policies.a]\nmatch = { volume = "*" }\nevery = "24h"\nkeep = { last = 3 }\n'
     'sometimes = true\n', 5, "policies.a.sometimes", "unknown key"),
    ('[policies.a]\nmatch = { volume = "*" }\nevery = "1 fortnight"\n', 3, "policies.a.every",
     "bad duration"),
    ('[policies.a]\nmatch = { volume = "*" }\nevery = "30m"\n', 3, "policies.a.every",
     "bad duration"),
    ('[policies.a]\nmatch = { volume = "*" }\nevery = "24h"\nverify = "0h"\n', 4,
     "policies.a.verify", "longer than zero"),
    ('[policies.a]\nmatch = { volume = "*" }\nevery = "24h"\nkeep = { daily = "7x" }\n', 4,
     "policies.a.keep.daily", "whole number"),
    ('# nothing\n\n[policies.a]\nevery = "24h"\n', 3, "policies.a", "no match rule"),
    ('[policies.a]\nmatch = {}\nevery = "24h"\n', 1, "policies.a", "no match rule"),
    ('[policies.a]\nmatch = { volume = "*" }\nevery = "24h"\nkeep = {}\n', 4,
     "policies.a.keep", "has no rule"),
    ('[policies.a]\nmatch = { colour = "red" }\nevery = "24h"\n', 2, "policies.a.match.colour",
     "unknown key"),
    ('[policies.a]\nmatch = { volume = "*" }\n', 1, "policies.a", "has no every"),
    ('polices = 3\n', 1, "polices", "unknown key"),
    ('[labels]\nenvironment_tag = "env"\n[[labels.rules]]\nzone = "fr-par-1"\n'
     'environment = "prod"\n[[labels.rules]]\nenvironment = "prod"\n', 6, "labels.rules[1]",
     "needs at least one"),
    ('[run]\nprune_above = 300\n', 2, "run.prune_above", "percentage"),
])
def test_mistakes_are_one_line_naming_file_line_and_key(
        text: str, line: int, key: str, words: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(text)
    with pytest.raises(UsageError) as caught:
        load_config(load_settings())
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: {key}: ") and words in message, message
    assert "\n" not in message
    assert main(["policies"]) == 2   # before any Scaleway call: no credentials are set
    err = capsys.readouterr().err
    assert err.strip() == f"strongroom: error: {message}"


@pytest.mark.parametrize("spec", ["0/3", "4/3", "a/b", "1/0", "3", "-1/2"])
def test_a_shard_out_of_range_is_a_usage_error(spec: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", f"--shard={spec}", "--no-daemon"]) == 2
    assert "bad shard" in capsys.readouterr().err


def test_every_volume_is_in_exactly_one_shard() -> None:
    ids = [f"vol-{i:04d}" for i in range(600)]
    shards = [Shard.parse(f"{i}/3") for i in (1, 2, 3)]
    owners = [[s for s in shards if s.owns(v)] for v in ids]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(1 for o in owners if o[0] is s) for s in shards]
    assert min(sizes) > 150  # a hash spreads them; no shard is left idle
    assert Shard.parse("2/3").owns("vol-0001") == Shard.parse("2/3").owns("vol-0001")


def test_periods_read_back_what_they_show() -> None:
    for text in ("24h", "1d12h", "30min", "1w", "90s"):
        assert parse_period(show_period(parse_period(text))) == parse_period(text)
    assert show_period(parse_period("1w")) == "7d"
