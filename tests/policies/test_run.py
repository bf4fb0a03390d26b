"""`strongroom run | status | policies` against the sandbox, into one S3 store: shards that run
at once back every volume up exactly once, a second run does nothing, one failing volume does
not stop the others, and the keep rules forget by the snapshots' (moved) times."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from scaleway.block.v1 import CreateVolumeRequestFromEmpty

from cli.main import main
from engine.scaleway.api import Apis
from engine.scaleway.config import scw_client
from engine.settings import settings_path
from engine.store import Store

PASS = "policy passphrase"
GB = 1_000_000_000


@pytest.fixture
def s3_store(scw_env: dict[str, str], fast_kdf: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh store on the sandbox's S3 (moto's server), as a CronJob's would be."""
    bucket = f"store-{os.urandom(4).hex()}"
    s3 = boto3.client("s3", endpoint_url=scw_env["STRONGROOM_S3_ENDPOINT"],
                      aws_access_key_id=scw_env["SCW_ACCESS_KEY"],
                      aws_secret_access_key=scw_env["SCW_SECRET_KEY"], region_name="fr-par")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "fr-par"})
    url = f"s3://{bucket}/strongroom"
    Store.init(url, PASS).close()
    monkeypatch.setenv("STRONGROOM_PASSPHRASE", PASS)
    monkeypatch.setenv("STRONGROOM_STORE", url)
    monkeypatch.setenv("STRONGROOM_NO_DAEMON", "1")
    return url


@pytest.fixture
def make_volumes(scw_env: dict[str, str]) -> Iterator[Any]:
    """Small (1 GB, empty) volumes with a tag of this test's own, deleted afterwards."""
    apis = Apis(scw_client())
    project = apis.account.list_projects_all()[0].id
    made: list[Any] = []

    def make(tag: str, zones: list[str]) -> list[Any]:
        new = [apis.block.create_volume(zone=zone, name=f"pol-{tag}-{i}", perf_iops=5000,
                                        project_id=project, tags=[tag, "environment=testing"],
                                        from_empty=CreateVolumeRequestFromEmpty(size=GB))
               for i, zone in enumerate(zones)]
        made.extend(new)
        return [apis.block.wait_for_volume(volume_id=v.id, zone=v.zone) for v in new]

    yield make
    for vol in made:
        apis.block.delete_volume(volume_id=vol.id, zone=vol.zone)


def _settings(text: str) -> Path:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(["--json", *argv])
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip() else None, out.err


def _spawn(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cli.main", "--json", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ), cwd=Path(__file__).resolve().parents[2])


def _reports(runs: list[subprocess.Popen[str]]) -> list[dict]:
    """The JSON report of each run started at once, once each has succeeded."""
    reports = []
    for proc in runs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    return reports


def _per_volume(url: str) -> dict[str, int]:
    with Store.open(url, PASS) as store:
        counts: dict[str, int] = {}
        for snap in store.snapshots():
            vid = snap.source.get("volume_id", "")
            counts[vid] = counts.get(vid, 0) + 1
        return counts


def test_two_shards_at_once_back_up_every_volume_exactly_once(
        s3_store: str, make_volumes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    tag = f"team=t{os.urandom(3).hex()}"
    volumes = make_volumes(tag, ["fr-par-1", "fr-par-1", "fr-par-2", "nl-ams-1"])
    ids = {v.id for v in volumes}
    _settings(f'[policies.team]\nmatch = {{ tag = "{tag}" }}\nevery = "24h"\n'
              'keep = { last = 3 }\n')
    code, plan, _ = _cli(capsys, "run", "--dry-run")
    assert code == 0 and {d["volume_id"] for d in plan["due"]} == ids and not plan["backed_up"]
    assert _per_volume(s3_store) == {}  # a dry run does nothing

    reports = _reports([_spawn("run", "--shard", f"{i}/2") for i in (1, 2)])
    done = [b["volume_id"] for r in reports for b in r["backed_up"]]
    assert sorted(done) == sorted(ids)           # every one, each by one shard
    assert all(not r["failed"] for r in reports)
    assert all(b["policy"] == "team" and b["snapshot"] for r in reports for b in r["backed_up"])
    assert {k: v for k, v in _per_volume(s3_store).items() if k in ids} == {i: 1 for i in ids}

    code, again, _ = _cli(capsys, "run")
    assert code == 0 and again["backed_up"] == [] and ids <= set(again["not_due"])
    code, rows, _ = _cli(capsys, "status")
    mine = [r for r in rows if r["volume_id"] in ids]
    assert code == 0 and {r["state"] for r in mine} == {"ok"}
    assert all(r["policy"] == "team" and r["environment"] == "testing" and r["backups"] == 1
               for r in mine)
    # the snapshots record each volume's own labels
    with Store.open(s3_store, PASS) as store:
        assert {s.source["environment"] for s in store.snapshots()
                if s.source.get("volume_id") in ids} == {"testing"}


def test_one_failing_volume_does_not_stop_the_others(
        s3_store: str, make_volumes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    tag = f"team=f{os.urandom(3).hex()}"
    good, bad = make_volumes(tag, ["fr-par-1", "nl-ams-1"])
    # nl-ams's staging bucket does not exist: that volume's export has nowhere to go
    _settings(f'[buckets]\nnl-ams = "no-such-bucket-{os.urandom(3).hex()}"\n'
              f'[policies.team]\nmatch = {{ tag = "{tag}" }}\nevery = "24h"\n')
    code, report, err = _cli(capsys, "run")
    assert code == 1, err
    assert [b["volume_id"] for b in report["backed_up"]] == [good.id]
    assert [f["volume_id"] for f in report["failed"]] == [bad.id]
    assert "bucket" in report["failed"][0]["error"]
    code, rows, _ = _cli(capsys, "status")
    states = {r["volume_id"]: r["state"] for r in rows}
    assert code == 1 and states[good.id] == "ok" and states[bad.id] == "overdue"


def test_run_forgets_by_the_policy_rules_with_moved_times(
        s3_store: str, make_volumes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    tag = f"team=k{os.urandom(3).hex()}"
    (vol,) = make_volumes(tag, ["fr-par-1"])
    _settings(f'[policies.team]\nmatch = {{ tag = "{tag}" }}\nevery = "24h"\n'
              'keep = { last = 2 }\n')
    snaps = []
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        code, report, err = _cli(capsys, "run", "--time", f"{day}T03:00:00Z")
        assert code == 0, err
        (done,) = report["backed_up"]
        snaps.append(done["snapshot"])
        if day == "2026-01-02":  # an hour later, nothing is due (once is enough to show it)
            code, again, _ = _cli(capsys, "run", "--time", f"{day}T04:00:00Z")
            assert again["backed_up"] == [] and again["not_due"] == [vol.id]
    assert [f["snapshot"] for f in report["forgotten"]] == [snaps[0]]
    assert "unused" in report["prune"]  # measured after forgetting: prune only past the threshold
    with Store.open(s3_store, PASS) as store:
        kept = sorted((s.time, s.id) for s in store.snapshots()
                      if s.source.get("volume_id") == vol.id)
    assert [i for _, i in kept] == snaps[1:]
    assert [t[:10] for t, _ in kept] == ["2026-01-02", "2026-01-03"]
    code, rows, _ = _cli(capsys, "status", "--time", "2026-01-03T12:00:00Z")
    (row,) = [r for r in rows if r["volume_id"] == vol.id]
    assert row["state"] == "ok" and len(row["new_bytes"]) == 2
    code, rows, _ = _cli(capsys, "status", "--time", "2026-01-05T12:00:00Z")
    (row,) = [r for r in rows if r["volume_id"] == vol.id]
    assert code == 1 and row["state"] == "overdue"


def test_a_match_that_matches_nothing_is_a_usage_error(
        s3_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _settings('[policies.ghost]\nevery = "24h"\nmatch = { tag = "no-such-tag=x" }\n')
    for command in (["run", "--dry-run"], ["policies"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"strongroom: error: {path}:3: policies.ghost.match: matches no "
                              "volume"), err


def test_policies_explains_why_each_volume_matches(
        s3_store: str, make_volumes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    tag = f"team=p{os.urandom(3).hex()}"
    a, b = make_volumes(tag, ["fr-par-1", "fr-par-2"])
    _settings(f'[policies.par1]\nmatch = {{ tag = "{tag}", zone = "fr-par-1" }}\n'
              'every = "24h"\n'
              f'[policies.rest]\nmatch = {{ tag = "team=p*" }}\nevery = "7d"\n')
    code, doc, _ = _cli(capsys, "policies")
    assert code == 0
    par1, rest = doc["policies"]
    assert [v["volume_id"] for v in par1["volumes"]] == [a.id]
    assert sorted(par1["volumes"][0]["why"]) == [f"tag {tag}", "zone fr-par-1"]
    assert b.id in [v["volume_id"] for v in rest["volumes"]]
    assert {"volume_id": a.id, "volume_name": a.name, "policy": "par1"} in \
        rest["also_matched_by_earlier"]
    code, inventory, _ = _cli(capsys, "inventory", "--zone", "fr-par-1", "--zone", "fr-par-2")
    row = next(v for v in inventory if v["id"] == a.id)
    assert (row["environment"], row["policy"]) == ("testing", "par1")
    assert "data_class" in row


def test_runs_without_shards_at_once_never_back_a_volume_up_twice(
        s3_store: str, make_volumes: Any, capsys: pytest.CaptureFixture[str],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tag = f"team=c{os.urandom(3).hex()}"
    ids = {v.id for v in make_volumes(tag, ["fr-par-1", "fr-par-1", "fr-par-2"])}
    _settings(f'[policies.team]\nmatch = {{ tag = "{tag}" }}\nevery = "24h"\nverify = "7d"\n')
    reports = _reports([_spawn("run", "--jobs", "1") for _ in range(2)])
    done = [b["volume_id"] for r in reports for b in r["backed_up"]]
    assert sorted(done) == sorted(ids)  # each once: the other run skipped it or found it done
    for r in reports:
        others = {s["volume_id"] for s in r["skipped"]} | set(r["not_due"])
        assert ids - {b["volume_id"] for b in r["backed_up"]} <= others
    assert {k: v for k, v in _per_volume(s3_store).items() if k in ids} == {i: 1 for i in ids}
    # Verification is due once there are backups; it is recorded in the store, so a machine
    # with no cache of its own (a new pod) knows it too.
    code, first, _ = _cli(capsys, "run")
    assert code == 0 and first["verify"] == "verified" and first["backed_up"] == []
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "another-cache"))
    code, second, _ = _cli(capsys, "run")
    assert code == 0 and second["verify"] == "not due"
    code, rows, _ = _cli(capsys, "status")
    assert all(r["last_verified"] and not r["verify_due"] for r in rows if r["volume_id"] in ids)


def test_a_plain_backup_records_the_volume_own_labels(
        s3_store: str, make_volumes: Any, capsys: pytest.CaptureFixture[str]) -> None:
    tag = f"team=b{os.urandom(3).hex()}"
    (vol,) = make_volumes(tag, ["fr-par-2"])
    _settings('data_class = "internal"\n[[labels.rules]]\nzone = "fr-par-2"\n'
              'data_class = "pii"\n')
    code, done, err = _cli(capsys, "backup", vol.id)
    assert code == 0, err
    with Store.open(s3_store, PASS) as store:
        info = store.resolve(done[0]["snapshot"])
    assert (info.source["environment"], info.source["data_class"]) == ("testing", "pii")
    assert (info.tags["environment"], info.tags["data_class"]) == ("testing", "pii")


async def test_a_backup_started_as_the_app_does_records_the_volume_own_labels(
        s3_store: str, make_volumes: Any) -> None:
    """The app submits BackupParams without labels: the session finds the volume's own, as
    the command line does, so a snapshot's labels do not depend on who started it."""
    from engine.jobkinds import BackupParams
    from engine.session import Session
    from tests.scaleway.helpers import run_flow

    tag = f"team=c{os.urandom(3).hex()}"
    (vol,) = make_volumes(tag, ["fr-par-2"])
    _settings('data_class = "internal"\n[[labels.rules]]\nzone = "fr-par-2"\n'
              'data_class = "pii"\n')
    session = Session(store_url=s3_store, passphrase=lambda: PASS)
    ran = await run_flow(lambda r: session.backup(r, BackupParams(vol.id, vol.zone, vol.name)))
    assert ran.state == "done", ran.error
    with Store.open(s3_store, PASS) as store:
        info = store.resolve(ran.result.snapshot)
    assert (info.source["environment"], info.source["data_class"]) == ("testing", "pii")
