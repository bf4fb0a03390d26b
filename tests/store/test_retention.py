"""Retention rules (engine/store/retention.py) against restic: its own golden files for the
rules that came after Debian's restic 0.14 (the "oldest" rule), and the real restic binary on
histories made with `restic backup --time` for everything else."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.errors import OperationError, UsageError
from engine.store.retention import (UNLIMITED, Decision, Duration, GroupKey, KeepPolicy,
                                    SnapshotRef, apply_policy, group_snapshots, parse_count,
                                    parse_duration, would_remove_all)

DATA = Path(__file__).parent / "data"
UTC = timezone.utc


def policy_from(spec: dict[str, Any]) -> KeepPolicy:
    """A KeepPolicy from a dict of field names to counts, duration strings or tag lists."""
    fields: dict[str, Any] = {}
    for name, value in spec.items():
        if name == "tags":
            fields[name] = tuple(value)
        elif name.startswith("within"):
            fields[name] = parse_duration(value)
        else:
            fields[name] = value
    return KeepPolicy(**fields)


def kept(decisions: list[Decision]) -> list[tuple[str, list[str]]]:
    return [(d.id, d.matches) for d in decisions if d.keep]


# ---------------------------------------------------------------------------------------------
# restic's own golden files (see tests/store/data/restic_policy_fixtures.json for the source)

FIXTURES = json.loads((DATA / "restic_policy_fixtures.json").read_text())


def fixture_snapshots() -> list[SnapshotRef]:
    return [SnapshotRef(s["id"], s["time"], {t: "" for t in s.get("tags", [])})
            for s in FIXTURES["snapshots"]]


def resolve(case: dict) -> list[tuple[str, list[str]]]:
    """The golden file's kept list as (our id, matches): each entry is the first input snapshot
    not used yet with the same time, tags and paths (restic's stable sort keeps input order)."""
    used: set[str] = set()
    out = []
    for entry in case["keep"]:
        time, matches = entry[0], entry[1]
        extra = entry[2] if len(entry) > 2 else {}
        snap = next(s for s in FIXTURES["snapshots"]
                    if s["id"] not in used and s["time"] == time
                    and s.get("tags", []) == extra.get("tags", [])
                    and s.get("paths", []) == extra.get("paths", []))
        used.add(snap["id"])
        out.append((snap["id"], matches))
    return out


@pytest.mark.parametrize("case", FIXTURES["cases"], ids=lambda c: c["fixture"].rsplit("/", 1)[1])
def test_restic_golden_file(case: dict) -> None:
    decisions = apply_policy(fixture_snapshots(), policy_from(case["policy"]))
    assert kept(decisions) == resolve(case)
    assert len(decisions) == len(FIXTURES["snapshots"])


def test_the_oldest_rule_keeps_the_oldest_snapshot_while_a_count_is_left() -> None:
    # Four days, two snapshots on the first: --keep-daily 10 is not used up, so the oldest is
    # kept although its day already has a (newer) daily snapshot.
    snaps = [SnapshotRef(f"s{i}", t) for i, t in enumerate(
        ["2026-11-27T08:00:00Z", "2026-11-27T20:00:00Z", "2026-11-28T09:00:00Z",
         "2026-11-30T09:00:00Z"])]
    decisions = apply_policy(snaps, KeepPolicy(daily=10))
    assert [(d.id, [str(r) for r in d.reasons]) for d in decisions] == [
        ("s3", ["daily 2026-11-30"]), ("s2", ["daily 2026-11-28"]),
        ("s1", ["daily 2026-11-27"]), ("s0", ["oldest daily 2026-11-27"])]
    assert decisions[-1].matches == ["oldest daily snapshot"]
    # Used up: the oldest goes.
    assert [d.keep for d in apply_policy(snaps, KeepPolicy(daily=3))] == [True, True, True, False]


def test_the_oldest_rule_applies_to_within_periods_when_the_oldest_is_within() -> None:
    snaps = [SnapshotRef("a", "2026-11-30T01:00:00Z"), SnapshotRef("b", "2026-11-30T02:00:00Z")]
    decisions = apply_policy(snaps, KeepPolicy(within_daily=parse_duration("2d")))
    assert [(d.id, d.matches) for d in decisions] == [
        ("b", ["daily within 2d"]), ("a", ["oldest daily within 2d"])]


# ---------------------------------------------------------------------------------------------
# Semantics that the golden files and restic 0.14 do not pin down


def test_within_counts_from_the_newest_snapshot_not_from_now() -> None:
    snaps = [SnapshotRef("old", "2001-01-01T00:00:00Z"),
             SnapshotRef("new", "2001-01-05T00:00:00Z")]
    assert kept(apply_policy(snaps, KeepPolicy(within=parse_duration("3d")))) == [
        ("new", ["within 3d"])]


def test_within_ignores_snapshots_from_the_future() -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    snaps = [SnapshotRef("past", "2026-01-01T00:00:00Z"),
             SnapshotRef("future", "2027-01-01T00:00:00Z")]
    decisions = apply_policy(snaps, KeepPolicy(within=parse_duration("1d")), now=now)
    # The newest snapshot not in the future is "past": both are within 1d of it.
    assert [d.id for d in decisions if d.keep] == ["future", "past"]


def test_go_add_date_overflows_into_the_next_month() -> None:
    # 31 March − 1 month is "31 February", i.e. 2 March in a leap year (Go's AddDate), and
    # the cutoff itself is not within (strictly after).
    snaps = [SnapshotRef(name, t) for name, t in [
        ("mar01", "2020-03-01T12:00:00Z"), ("cutoff", "2020-03-02T12:00:00Z"),
        ("after", "2020-03-02T12:00:01Z"), ("newest", "2020-03-31T12:00:00Z")]]
    decisions = apply_policy(snaps, KeepPolicy(within=parse_duration("1m")))
    assert [d.id for d in decisions if d.keep] == ["newest", "after"]


def test_a_duration_past_year_one_keeps_everything() -> None:
    snaps = [SnapshotRef("a", "0005-01-01T00:00:00Z"), SnapshotRef("b", "2026-01-01T00:00:00Z")]
    decisions = apply_policy(snaps, KeepPolicy(within=parse_duration("9999y")))
    assert all(d.keep for d in decisions)


def test_periods_are_taken_in_the_given_zone() -> None:
    # 23:30 UTC on 30 Nov is already 1 Dec in Paris: two days there, one day in UTC.
    snaps = [SnapshotRef("a", "2026-11-30T10:00:00Z"), SnapshotRef("b", "2026-11-30T23:30:00Z")]
    utc = apply_policy(snaps, KeepPolicy(daily=5))
    paris = apply_policy(snaps, KeepPolicy(daily=5), tz=ZoneInfo("Europe/Paris"))
    assert [str(r) for d in utc for r in d.reasons] == [
        "daily 2026-11-30", "oldest daily 2026-11-30"]
    assert [str(r) for d in paris for r in d.reasons] == ["daily 2026-12-01", "daily 2026-11-30"]


def test_iso_weeks_belong_to_their_iso_year() -> None:
    # Sunday 3 Jan 2021 is in 2020-W53 with Thursday 31 Dec 2020; Monday 4 Jan starts 2021-W01.
    snaps = [SnapshotRef(d, f"{d}T12:00:00Z") for d in ("2020-12-31", "2021-01-03", "2021-01-04")]
    decisions = apply_policy(snaps, KeepPolicy(weekly=2))
    assert [(d.id, [str(r) for r in d.reasons]) for d in decisions] == [
        ("2021-01-04", ["weekly 2021-W01"]), ("2021-01-03", ["weekly 2020-W53"]),
        ("2020-12-31", [])]


def test_unlimited_keeps_one_per_period_and_the_oldest() -> None:
    snaps = [SnapshotRef(f"s{h}", f"2026-11-30T{h:02d}:00:00Z") for h in range(6)]
    decisions = apply_policy(snaps, KeepPolicy(daily=UNLIMITED))
    assert [d.keep for d in decisions] == [True, False, False, False, False, True]
    assert decisions[-1].matches == ["oldest daily snapshot"]


def test_readable_reasons_name_their_period() -> None:
    snaps = [SnapshotRef("a", "2026-11-30T14:05:00Z", {"env": "prod", "pinned": ""})]
    policy = KeepPolicy(last=1, hourly=1, weekly=1, monthly=1, yearly=1,
                        within=parse_duration("10d"), within_daily=parse_duration("7d"),
                        tags=("env=prod", "pinned"))
    [decision] = apply_policy(snaps, policy)
    assert [str(r) for r in decision.reasons] == [
        "tags env=prod", "tags pinned", "within 10d", "last", "hourly 2026-11-30 14:00",
        "weekly 2026-W49", "monthly 2026-11", "yearly 2026", "daily 2026-11-30 within 7d"]
    assert decision.matches == [
        "has tags [env=prod]", "has tags [pinned]", "within 10d", "last snapshot",
        "hourly snapshot", "weekly snapshot", "monthly snapshot", "yearly snapshot",
        "daily within 7d"]


def test_keep_tag_needs_every_tag_of_one_list() -> None:
    snaps = [SnapshotRef("both", "2026-01-03T00:00:00Z", {"env": "prod", "tier": "gold"}),
             SnapshotRef("one", "2026-01-02T00:00:00Z", {"env": "prod"}),
             SnapshotRef("none", "2026-01-01T00:00:00Z")]
    decisions = apply_policy(snaps, KeepPolicy(tags=("env=prod, tier=gold",)))
    assert kept(decisions) == [("both", ["has tags [env=prod, tier=gold]"])]
    # restic's quirk, kept: an empty tag keeps the untagged snapshots.
    assert [d.id for d in apply_policy(snaps, KeepPolicy(tags=("",))) if d.keep] == ["none"]


def test_an_empty_policy_keeps_everything_and_says_it_is_empty() -> None:
    assert KeepPolicy().empty
    assert not KeepPolicy(tags=("x",)).empty and not KeepPolicy(last=UNLIMITED).empty
    assert not KeepPolicy(within_yearly=Duration(hours=1)).empty
    snaps = [SnapshotRef("a", "2026-01-01T00:00:00Z"), SnapshotRef("b", "2026-01-02T00:00:00Z")]
    assert [(d.id, d.keep, d.reasons) for d in apply_policy(snaps, KeepPolicy())] == [
        ("b", True, ()), ("a", True, ())]


def test_would_remove_all() -> None:
    snaps = [SnapshotRef("a", "2026-01-01T00:00:00Z", {"x": ""}),
             SnapshotRef("b", "2026-01-02T00:00:00Z")]
    assert would_remove_all(apply_policy(snaps, KeepPolicy(tags=("y",))))
    assert not would_remove_all(apply_policy(snaps, KeepPolicy(tags=("x",))))
    assert not would_remove_all(apply_policy(snaps, KeepPolicy(last=1)))
    assert not would_remove_all([])


def test_times_may_be_strings_datetimes_or_naive_utc() -> None:
    snaps = [SnapshotRef("str", "2026-01-02T00:00:00.123456Z"),
             SnapshotRef("aware", datetime(2026, 1, 3, 1, tzinfo=timezone(timedelta(hours=2)))),
             SnapshotRef("naive", datetime(2026, 1, 1))]
    decisions = apply_policy(snaps, KeepPolicy(last=3))
    assert [d.id for d in decisions] == ["aware", "str", "naive"]
    assert decisions[2].time == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(OperationError, match="snapshot bad has an unreadable time"):
        apply_policy([SnapshotRef("bad", "yesterday")], KeepPolicy(last=1))


def test_snapshot_info_is_a_candidate() -> None:
    from engine.store.snapshot import SnapshotInfo
    info = SnapshotInfo(id="abc", time="2026-01-01T00:00:00.000000Z", name="db", bytes=1,
                        stored_bytes=1, seconds=0.1, tags={"env": "prod"},
                        source={"volume_id": "v1", "zone": "fr-par-1"})
    [decision] = apply_policy([info], KeepPolicy(last=1))
    assert decision.snapshot is info and decision.keep
    assert list(group_snapshots([info])) == [GroupKey("volume", volume_id="v1", zone="fr-par-1")]


# ---------------------------------------------------------------------------------------------
# Durations and counts


@pytest.mark.parametrize("text, expected", [
    ("1y2m3d4h", Duration(1, 2, 3, 4)), ("4h3d9m", Duration(months=9, days=3, hours=4)),
    ("10d", Duration(days=10)), (" 7d ", Duration(days=7)), ("0d", Duration()),
    ("9999y", Duration(years=9999))])
def test_parse_duration(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


def test_duration_prints_as_restic_does() -> None:
    assert str(parse_duration("4h3d9m")) == "9m3d4h"
    assert str(parse_duration("1y2m3d3h")) == "1y2m3d3h"
    assert parse_duration("0h").zero


@pytest.mark.parametrize("text, says", [
    ("", "empty duration"), ("2w", "unit 'w' after 2"), ("1y4m3w1d", "unit 'w' after 3"),
    ("5", "no unit after 5"), ("d", "expected a number at 'd'"), ("-7d", "negative"),
    ("1d-2h", "negative"), ("1d1d", "unit 'd' given twice"), ("5d 3h", "expected a number"),
    ("\u0660d", "expected a number"),  # an Arabic-Indic zero: ASCII digits only, as restic
    ("1.5d", "unit '.' after 1")])
def test_parse_duration_errors_say_what_is_accepted(text: str, says: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_duration(text)
    message = str(err.value)
    assert says in message and "units y, m, d, h" in message and "\n" not in message
    assert err.value.exit_code == 2


def test_counts() -> None:
    assert parse_count("7") == 7 and parse_count("0") == 0 and parse_count("unlimited") == -1
    for bad in ("-1", "x", "1.5", "", "٣"):
        with pytest.raises(UsageError, match="whole number ≥ 0 or 'unlimited'"):
            parse_count(bad)


def test_policy_rejects_what_restic_rejects() -> None:
    with pytest.raises(UsageError, match="--keep-daily must be a number ≥ 0 or 'unlimited'"):
        KeepPolicy(daily=-2)
    with pytest.raises(UsageError, match="--keep-within-weekly must not be negative"):
        KeepPolicy(within_weekly=Duration(days=-1))


# ---------------------------------------------------------------------------------------------
# Grouping

VOLUME_A = {"volume_id": "11111111-aaaa", "zone": "fr-par-1"}


def test_group_by_volume_then_name_for_images() -> None:
    snaps = [SnapshotRef("1", "2026-01-01T00:00:00Z", name="db", source=VOLUME_A),
             SnapshotRef("2", "2026-01-02T00:00:00Z", name="db-renamed", source=VOLUME_A),
             SnapshotRef("3", "2026-01-03T00:00:00Z", name="db",
                         source={"volume_id": "11111111-aaaa", "zone": "nl-ams-1"}),
             SnapshotRef("4", "2026-01-04T00:00:00Z", name="disk.qcow2"),
             SnapshotRef("5", "2026-01-05T00:00:00Z", name="disk.qcow2", source={"file": "x"}),
             SnapshotRef("6", "2026-01-06T00:00:00Z", name="db")]
    groups = group_snapshots(snaps)
    assert {k.label: [s.id for s in v] for k, v in groups.items()} == {
        "volume 11111111-aaaa (fr-par-1)": ["1", "2"],
        "volume 11111111-aaaa (nl-ams-1)": ["3"],
        "name disk.qcow2": ["4", "5"],
        "name db": ["6"]}
    assert {k.label: [s.id for s in v] for k, v in group_snapshots(snaps, "name").items()} == {
        "name db": ["1", "3", "6"], "name db-renamed": ["2"], "name disk.qcow2": ["4", "5"]}
    assert {k.label: len(v) for k, v in group_snapshots(snaps, "none").items()} == {
        "all snapshots": 6}


def test_group_by_something_else_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--group-by takes volume, name or none, not 'host'"):
        group_snapshots([], "host")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Against the restic binary

RESTIC = shutil.which("restic")
needs_restic = pytest.mark.skipif(
    RESTIC is None, reason="restic is not installed (apt-get install restic): these tests "
                           "compare our retention with `restic forget` on real repositories")
PASSWORD = "retention-test"

# Histories (UTC, no DST), one restic repository each. Times within a history are distinct:
# restic lists snapshots in no set order, so of two with one time either could be kept.
DENSE = [  # hours and days around a year end; Mon 30 Dec 2019 starts ISO week 2020-W01
    "2019-12-27 08:00:00", "2019-12-27 20:15:00", "2019-12-28 23:59:59",
    "2019-12-29 00:00:00", "2019-12-29 12:00:00", "2019-12-29 23:59:59",
    "2019-12-30 00:00:00", "2019-12-30 00:30:00", "2019-12-30 09:10:00",
    "2019-12-31 23:00:00", "2019-12-31 23:30:00", "2019-12-31 23:59:59",
    "2020-01-01 00:00:00", "2020-01-01 00:00:01", "2020-01-01 06:00:00",
    "2020-01-02 10:00:00", "2020-01-02 10:20:00", "2020-01-02 10:40:00", "2020-01-02 11:00:00",
    "2020-01-05 23:59:59", "2020-01-06 00:00:00", "2020-01-06 13:00:00",
    "2020-01-06 13:45:00", "2020-01-06 14:00:00"]
WEEKS = [  # ISO week-year boundaries: 2020 has a W53; 3 Jan 2021 is in it, 30 Dec 2024 is 2025-W01
    "2020-11-30 10:00:00", "2020-12-14 10:00:00", "2020-12-21 10:00:00", "2020-12-27 23:00:00",
    "2020-12-28 01:00:00", "2020-12-31 10:00:00", "2021-01-01 10:00:00", "2021-01-03 23:59:59",
    "2021-01-04 00:00:00", "2021-01-10 10:00:00", "2021-03-15 10:00:00", "2021-12-31 10:00:00",
    "2022-01-02 10:00:00", "2022-01-03 10:00:00", "2023-01-01 10:00:00", "2023-01-02 10:00:00",
    "2024-12-29 10:00:00", "2024-12-30 10:00:00", "2024-12-31 10:00:00", "2025-01-01 10:00:00",
    "2025-01-05 10:00:00", "2025-01-06 10:00:00"]
YEARS = [  # months and years; the newest is 31 March 2020 for Go's month arithmetic
    "2015-06-15 10:00:00", "2016-02-29 12:00:00", "2016-03-01 12:00:00", "2016-12-31 23:59:59",
    "2017-01-01 00:00:00", "2017-01-31 10:00:00", "2017-02-28 10:00:00", "2017-03-01 10:00:00",
    "2018-07-04 10:00:00", "2018-12-31 23:59:59", "2019-01-01 00:00:00", "2019-03-31 12:00:00",
    "2019-03-31 12:00:01", "2019-06-30 10:00:00", "2019-07-31 10:00:00", "2019-11-30 10:00:00",
    "2020-01-31 10:00:00", "2020-02-29 12:00:00", "2020-03-01 12:00:00", "2020-03-02 12:00:00",
    "2020-03-02 12:00:01", "2020-03-29 00:00:00", "2020-03-29 00:00:01", "2020-03-30 12:00:00",
    "2020-03-31 12:00:00"]
HISTORIES = {"dense": DENSE, "weeks": WEEKS, "years": YEARS}
# Tags on some snapshots, for --keep-tag: (history, time) -> restic tags
TAGS = {("dense", "2019-12-28 23:59:59"): ["pinned"],
        ("weeks", "2021-03-15 10:00:00"): ["env=prod", "tier=gold"],
        ("weeks", "2022-01-03 10:00:00"): ["env=prod"],
        ("years", "2016-02-29 12:00:00"): ["pinned", "env=prod"]}

# Policies, as restic flags. Most use every count up on every history; where one does not,
# the comparison below accounts for the oldest rule exactly (see compare_with_restic_0_14).
POLICIES = [
    ["--keep-last", "5"],
    ["--keep-hourly", "6"],
    ["--keep-daily", "4"],
    ["--keep-weekly", "3"],
    ["--keep-monthly", "3"],
    ["--keep-yearly", "2"],
    ["--keep-last", "2", "--keep-daily", "3", "--keep-weekly", "2", "--keep-monthly", "2"],
    ["--keep-hourly", "3", "--keep-daily", "2", "--keep-yearly", "2"],
    ["--keep-hourly", "unlimited"],
    ["--keep-monthly", "unlimited", "--keep-daily", "2"],
    ["--keep-within", "1m"],
    ["--keep-within", "1m1d"],
    ["--keep-within", "2d12h"],
    ["--keep-within", "1y"],
    ["--keep-within", "3d", "--keep-weekly", "2"],
    ["--keep-within-hourly", "1d"],
    ["--keep-within-daily", "3d"],
    ["--keep-within-weekly", "1m"],
    ["--keep-within-monthly", "1y"],
    ["--keep-within-yearly", "3y"],
    ["--keep-tag", "pinned"],
    ["--keep-tag", "env=prod,tier=gold", "--keep-tag", "pinned", "--keep-last", "1"],
]
FLAG_FIELDS = {"--keep-last": "last", "--keep-hourly": "hourly", "--keep-daily": "daily",
               "--keep-weekly": "weekly", "--keep-monthly": "monthly",
               "--keep-yearly": "yearly", "--keep-within": "within",
               "--keep-within-hourly": "within_hourly", "--keep-within-daily": "within_daily",
               "--keep-within-weekly": "within_weekly",
               "--keep-within-monthly": "within_monthly",
               "--keep-within-yearly": "within_yearly"}


def policy_from_flags(flags: list[str]) -> KeepPolicy:
    fields: dict[str, Any] = {}
    tags: list[str] = []
    for flag, value in zip(flags[::2], flags[1::2]):
        if flag == "--keep-tag":
            tags.append(value)
        elif flag.startswith("--keep-within"):
            fields[FLAG_FIELDS[flag]] = parse_duration(value)
        else:
            fields[FLAG_FIELDS[flag]] = parse_count(value)
    return KeepPolicy(**fields, tags=tuple(tags))


def restic(env: dict[str, str], *args: str) -> str:
    run = subprocess.run([RESTIC, "--no-cache", *args], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, f"restic {' '.join(args)}: {run.stderr.strip()}"
    return run.stdout


def restic_mac(key: bytes, nonce: bytes, data: bytes) -> bytes:
    """restic's Poly1305-AES: r = key[16:], s = AES-128(k = key[:16], nonce)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.poly1305 import Poly1305
    aes = Cipher(algorithms.AES(key[:16]), modes.ECB()).encryptor()
    return Poly1305.generate_tag(key[16:] + aes.update(nonce) + aes.finalize(), data)


def restic_crypt(keys: bytes, nonce: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    ctr = Cipher(algorithms.AES(keys[:32]), modes.CTR(nonce)).decryptor()
    return ctr.update(data) + ctr.finalize()


def cheapen_restic_key(repo: Path) -> None:
    """Re-wrap the repository's master key with a cheap scrypt (N=1024). restic 0.14 calibrates
    scrypt to ~0.5 s, paid by every restic command; this test runs ~90 of them. The format is
    restic's key file: scrypt(password) → 32 bytes AES-256-CTR key, 16+16 bytes Poly1305-AES
    key; data = nonce | ciphertext | MAC."""
    [path] = (repo / "keys").iterdir()
    doc = json.loads(path.read_bytes())

    def derive(salt: bytes, n: int, r: int, p: int) -> bytes:
        return hashlib.scrypt(PASSWORD.encode(), salt=salt, n=n, r=r, p=p, maxmem=1 << 30,
                              dklen=64)

    old = derive(base64.b64decode(doc["salt"]), doc["N"], doc["r"], doc["p"])
    blob = base64.b64decode(doc["data"])
    nonce, body, tag = blob[:16], blob[16:-16], blob[-16:]
    assert restic_mac(old[32:], nonce, body) == tag, "wrong password for the restic key"
    master = restic_crypt(old, nonce, body)
    salt, nonce = os.urandom(64), os.urandom(16)
    new = derive(salt, 1024, 8, 1)
    body = restic_crypt(new, nonce, master)
    doc.update(N=1024, r=8, p=1, salt=base64.b64encode(salt).decode(),
               data=base64.b64encode(nonce + body + restic_mac(new[32:], nonce, body)).decode())
    raw = json.dumps(doc).encode()
    (repo / "keys" / hashlib.sha256(raw).hexdigest()).write_bytes(raw)
    path.unlink()


@pytest.fixture(scope="module")
def restic_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """One restic repository per history (history -> restic environment), made by `restic
    backup --time` of a tiny file. Repositories are built side by side, backups one at a time
    in each: concurrent backups in one repository trip restic 0.14 into minutes of retries
    (it retries loading a lock file that another backup has just removed)."""
    root = tmp_path_factory.mktemp("restic")
    (root / "file").write_text("tiny\n")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(root), "TZ": "UTC",
           "RESTIC_PASSWORD": PASSWORD}
    restic({**env, "RESTIC_REPOSITORY": str(root / "template")}, "init")
    cheapen_restic_key(root / "template")
    envs = {}
    for name in HISTORIES:  # copies share the template's key: one init (~2 s) for all
        shutil.copytree(root / "template", root / name)
        envs[name] = {**env, "RESTIC_REPOSITORY": str(root / name)}

    def backups(name: str) -> None:
        for time in HISTORIES[name]:
            tags = [arg for tag in TAGS.get((name, time), []) for arg in ("--tag", tag)]
            restic(envs[name], "backup", "--quiet", "--host", "h", "--time", time, *tags,
                   str(root / "file"))

    with ThreadPoolExecutor(len(HISTORIES)) as pool:
        list(pool.map(backups, HISTORIES))
    return envs


def restic_forget(env: dict[str, str], flags: list[str]) -> dict:
    """`restic forget --dry-run --json` on a repository holding one group."""
    [group] = json.loads(restic(env, "--no-lock", "forget", "--dry-run", "--json", *flags))
    return {key: group[key] or [] for key in ("keep", "remove", "reasons")}


def restic_tags(tags: list[str] | None) -> dict[str, str]:
    return dict((t.split("=", 1) + [""])[:2] for t in tags or [])


def restic_version() -> tuple[int, int]:
    out = subprocess.run([RESTIC, "version"], capture_output=True, text=True, check=True).stdout
    major, minor = out.split()[1].split(".")[:2]
    return int(major), int(minor)


def restic_flags(flags: list[str], version: tuple[int, int]) -> list[str]:
    # -1 means unlimited in restic 0.15; 0.16 spells it "unlimited" and refuses -1.
    return ["-1" if f == "unlimited" and version < (0, 16) else f for f in flags]


def compare_with_restic(ours: list[Decision], group: dict, version: tuple[int, int]) -> bool:
    """Same kept snapshots, in the same order, for the same reasons as restic. restic < 0.16
    predates the oldest rule: where ours fired it, such a restic must agree with our result
    without the "oldest …" reasons (the rule only ever adds them, on the last snapshot of the
    walk). Returns whether the oldest rule fired."""
    fired = any(r.oldest for d in ours for r in d.reasons)
    expected = {}
    for d in ours:
        matches = [r.restic for r in d.reasons if version >= (0, 16) or not r.oldest]
        if matches:
            expected[d.id] = matches
    # restic 0.14's reasons name no id: they are in the order of "keep"
    theirs = {s["id"]: r["matches"] for s, r in zip(group["keep"], group["reasons"], strict=True)}
    assert theirs == expected
    assert [s["id"] for s in group["keep"]] == [d.id for d in ours if d.id in expected]
    assert {s["id"] for s in group["remove"] or []} == {d.id for d in ours} - set(expected)
    return fired


@needs_restic
@pytest.mark.parametrize("flags", POLICIES, ids=" ".join)
def test_same_as_restic_forget(restic_repos: dict[str, dict[str, str]], flags: list[str]) -> None:
    version = restic_version()
    if "unlimited" in flags and version < (0, 15):
        pytest.skip("restic < 0.15 has no unlimited count: it takes -1 as 'rule off' "
                    "(the golden file policy_keep_snapshots_39 covers unlimited)")
    policy = policy_from_flags(flags)
    fired = []
    for name, times in HISTORIES.items():
        group = restic_forget(restic_repos[name], restic_flags(flags, version))
        snaps = [SnapshotRef(s["id"], s["time"], restic_tags(s.get("tags")))
                 for s in group["keep"] + group["remove"]]
        assert sorted(s.time for s in snaps) == [t.replace(" ", "T") + "Z" for t in times]
        if compare_with_restic(apply_policy(snaps, policy), group, version):
            fired.append(name)
    # Where no oldest rule fires, the comparison is exact with any restic: keep it the rule.
    assert len(fired) <= 1, f"the oldest rule fired on {fired}: use counts that get used up"


def test_the_restic_table_covers_every_rule() -> None:
    used = {FLAG_FIELDS.get(flag, flag) for flags in POLICIES for flag in flags[::2]}
    assert used == set(FLAG_FIELDS.values()) | {"--keep-tag"}

