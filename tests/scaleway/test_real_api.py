"""The connector copes with what the real API does (issue 13): the flows against the sandbox in
its real-429 mode and its realistic timing mode, and each point's consequence for inventory,
preflight, backup and restore. Each test names its point."""
from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid
from typing import Any

import pytest
from scaleway.block import v1
from scaleway_core.api import ScalewayException

from engine.errors import OperationError, UsageError
from engine.jobs import DONE, FAILED
from engine.sandbox import REAL_429, Delays
from engine.scaleway.api import Apis, GatewayError, RateGauge, RetryPolicy, scw_message
from engine.scaleway.config import scw_client
from engine.scaleway.flows import _wait_snapshot, backup_volume, restore_snapshot
from engine.scaleway.inventory import block_zones, list_inventory, list_volumes
from engine.scaleway.preflight import MISSING, OK, preflight
from engine.settings import Settings
from tests.scaleway.helpers import FAST, leftovers, run_flow
# the flow tests' fixtures (a fresh store, the sandbox's APIs, faults reset around a test)
from tests.scaleway.test_flows import _volume, apis, clean_faults, store  # noqa: F401

GB = 1000 ** 3
REQUEST_ID = re.compile(r"request id [0-9a-f-]{36}")


def _runs_of_429(log: list[dict[str, Any]]) -> int:
    """The longest run of 429s answered to one method and path in a row."""
    longest, last, run = 0, None, 0
    for call in log:
        key = (call["method"], call["path"])
        if call["status"] == 429:
            run = run + 1 if key == last else 1
            longest = max(longest, run)
        else:
            run = 0
        last = key
    return longest


# -- 1: empty-body 429s ---------------------------------------------------------------------
async def test_1_flows_pass_in_real_429_mode(sandbox: Any, apis: Apis, store: Any,
                                             clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    sandbox.faults(**REAL_429)
    inventory = await run_flow(lambda r: list_inventory(apis, reporter=r))
    assert inventory.state == DONE, inventory.error
    assert {"dev-scratch", "web-01-data"} <= {v.name for v in inventory.result}
    checked = await run_flow(lambda r: preflight(apis, zone=vol.zone, reporter=r,
                                                 bucket=sandbox.buckets["fr-par"]))
    assert checked.state == DONE and checked.result.ok, checked.result
    backup = await run_flow(lambda r: backup_volume(r, store=store, client=apis,
                                                    volume_id=vol.id, zone=vol.zone,
                                                    timeouts=FAST, settings=Settings()))
    assert backup.state == DONE, backup.error
    restore = await run_flow(lambda r: restore_snapshot(r, store=store, client=apis,
                                                        ref=backup.result.snapshot,
                                                        zone=vol.zone,
                                                        rename_on_clash=True, timeouts=FAST,
                                                        settings=Settings()))
    assert restore.state == DONE, restore.error
    sandbox.faults()
    # several empty-body 429s in a row, on lists, creates and waits alike
    log = inventory.log + checked.log + backup.log + restore.log
    assert _runs_of_429(log) >= 3
    refused = {(c["method"], "list" if c["path"].endswith(("/volumes", "/snapshots"))
                else "one") for c in log if c["status"] == 429}
    assert ("GET", "list") in refused and ("GET", "one") in refused
    assert any(m == "POST" for m, _ in refused)
    apis.block.delete_volume(volume_id=restore.result.volume_id, zone=vol.zone)


async def test_1_a_429_after_the_last_try_is_one_clear_error(sandbox: Any, apis: Apis,
                                                             store: Any,
                                                             clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    sandbox.faults(rate_429=1.0, streak_429=100)     # longer than any retry policy
    with pytest.raises(OperationError) as err:
        await list_volumes(apis, vol.project_id, vol.zone)
    message = str(err.value)
    assert "rate-limited" in message and "HTTP 429" in message and "wait a minute" in message
    assert REQUEST_ID.search(message) and "\n" not in message
    job = await run_flow(lambda r: backup_volume(r, store=store, client=apis, volume_id=vol.id,
                                                 zone=vol.zone, timeouts=FAST,
                                                 settings=Settings()))
    assert job.state == FAILED
    assert "rate-limited" in job.error and len(job.error.splitlines()) == 1
    assert job.view.error.type == "OperationError"     # not a JSONDecodeError
    sandbox.faults()


def test_1_the_gateway_error_is_an_api_error_for_every_handler(sandbox: Any, apis: Apis,
                                                               clean_faults: Any) -> None:
    sandbox.faults(rate_429=1.0, streak_429=100)
    with pytest.raises(ScalewayException) as err:
        apis.block.list_volumes(zone="fr-par-1", include_deleted=False)
    assert isinstance(err.value, GatewayError) and err.value.status_code == 429
    assert scw_message(err.value) == str(err.value)


# -- 2: zones from the API ------------------------------------------------------------------
async def test_2_zones_are_asked_of_the_api_and_it_mil_1_is_one(sandbox: Any, apis: Apis,
                                                               clean_faults: Any) -> None:
    zones = await block_zones(apis, fresh=True)
    assert "it-mil-1" in zones and {"fr-par-1", "fr-par-2", "nl-ams-1"} <= set(zones)
    vol = apis.block.create_volume(zone="it-mil-1", name=f"milano-{uuid.uuid4().hex[:6]}",
                                   perf_iops=5000,
                                   from_empty=v1.CreateVolumeRequestFromEmpty(size=5 * GB))
    try:
        found = {v.id: v for v in await list_inventory(apis)}      # no zones given
        assert found[vol.id].zone == "it-mil-1"
    finally:
        await _until_deleted(apis, "it-mil-1", vol.id)


async def _until_deleted(apis: Apis, zone: str, volume_id: str) -> None:
    for _ in range(600):
        try:
            apis.block.delete_volume(volume_id=volume_id, zone=zone)
            return
        except ScalewayException as exc:
            if exc.status_code == 404:
                return
            await asyncio.sleep(0.05)


# -- 3: a smaller clone is a failed precondition, said clearly -------------------------------
async def test_3_a_refused_smaller_clone_says_why(sandbox: Any, apis: Apis,
                                                  clean_faults: Any) -> None:
    snap = next(s for s in sandbox.world.state.coll("snapshots").values()
                if s["name"] == "postgres-main-nightly")
    with pytest.raises(ScalewayException) as err:
        apis.block.create_volume(zone="fr-par-1", name="too-small", perf_iops=5000,
                                 project_id=snap["project_id"],
                                 from_snapshot=v1.CreateVolumeRequestFromSnapshot(
                                     snapshot_id=snap["id"], size=5 * GB))
    message = scw_message(err.value)
    assert "precondition: resource_not_usable" in message and "HTTP 412" in message
    assert REQUEST_ID.search(message)


# -- 5: another organization's snapshot -----------------------------------------------------
async def test_5_an_export_of_another_organization_s_snapshot_is_not_reused(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    vol = await _volume(apis, "web-01-data", sandbox)      # in fr-par-1, as the neighbour's
    neighbour = next(s for s in sandbox.world.state.coll("snapshots").values()
                     if s["name"] == "neighbour-db")
    assert neighbour["zone"] == vol.zone
    bucket = sandbox.buckets["fr-par"]
    key = f"strongroom-tmp/{vol.id}/{neighbour['id']}.qcow2"
    s3 = apis.s3_for_zone(vol.zone)
    s3.put_object(Bucket=bucket, Key=key, Body=b"not ours")
    try:
        out = await backup_volume(None, store=store, client=apis, volume_id=vol.id,
                                  zone=vol.zone, timeouts=FAST, settings=Settings(),
                                  leftovers_min_age=3600)
        assert not out.resumed and out.scw_snapshot_id != neighbour["id"]
        with pytest.raises(ScalewayException) as err:
            apis.block.get_snapshot(snapshot_id=neighbour["id"], zone="fr-par-1")
        assert "read snapshot" in scw_message(err.value)
    finally:
        s3.delete_object(Bucket=bucket, Key=key)


# -- 6: in_use snapshots --------------------------------------------------------------------
async def test_6_a_wait_for_available_accepts_in_use(sandbox: Any, apis: Apis) -> None:
    image = next(s for s in sandbox.world.state.coll("snapshots").values()
                 if s["name"] == "web-01-golden-image")
    snap = await asyncio.wait_for(_wait_snapshot(apis, "fr-par-1", image["id"], {"available"},
                                                 {"creating"}, 30, "the snapshot", FAST), 10)
    assert str(snap.status) == "in_use"


async def test_6_a_restore_deletes_its_snapshot_once_the_volume_no_longer_uses_it(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    backup = await backup_volume(None, store=store, client=apis, volume_id=vol.id,
                                 zone=vol.zone, timeouts=FAST, settings=Settings())
    before = sandbox.world.delays.create
    sandbox.world.delays.create = 1.0      # the clone takes a while: its snapshot is in_use
    try:
        job = await run_flow(lambda r: restore_snapshot(r, store=store, client=apis,
                                                        ref=backup.snapshot, zone=vol.zone,
                                                        rename_on_clash=True,
                                                        timeouts=FAST, settings=Settings()))
    finally:
        sandbox.world.delays.create = before
    assert job.state == DONE, job.error
    assert job.result.warnings == []
    assert leftovers(apis, vol.zone, sandbox.buckets["fr-par"])["snapshots"] == []
    apis.block.delete_volume(volume_id=job.result.volume_id, zone=vol.zone)


# -- 7: legacy volumes through the Block API ------------------------------------------------
async def test_7_a_legacy_volume_is_listed_once_and_refused_early(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    legacy_id = next(iter(sandbox.world.state.coll("instance_volumes")))
    volumes = [v for v in await list_inventory(apis, zones=["fr-par-1"]) if v.id == legacy_id]
    assert len(volumes) == 1
    legacy = volumes[0]
    assert not legacy.backupable and "legacy" in legacy.reason and legacy.server == "web-01"
    job = await run_flow(lambda r: backup_volume(r, store=store, client=apis,
                                                 volume_id=legacy_id, zone="fr-par-1",
                                                 timeouts=FAST, settings=Settings()))
    assert job.state == FAILED and "cannot be backed up" in job.error
    assert not [c for c in job.log if c["method"] == "POST"]


# -- 8: a user's API key --------------------------------------------------------------------
async def test_8_preflight_checks_a_user_s_key_through_its_groups(
        sandbox: Any, scw_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    access, secret = sandbox.keys["user"]
    monkeypatch.setenv("SCW_ACCESS_KEY", access)
    monkeypatch.setenv("SCW_SECRET_KEY", secret)
    report = await preflight(scw_client(), zone="fr-par-1", bucket=sandbox.buckets["fr-par"])
    assert report.ok, [c for c in report.checks if not c.ok]
    # without its group, the user's own policy grants no Block or Object Storage right
    group = next(g for g in sandbox.world.state.coll("groups").values()
                 if g["name"] == "storage-operators")
    members, group["user_ids"] = group["user_ids"], []
    try:
        report = await preflight(scw_client(), zone="fr-par-1",
                                 bucket=sandbox.buckets["fr-par"])
    finally:
        group["user_ids"] = members
    missing = {c.name: c for c in report.checks if c.status == MISSING}
    assert "permission BlockStorageFullAccess" in missing
    assert missing["permission BlockStorageFullAccess"].detail.startswith("user ")


# -- 9: request ids and the rate-limit headers ----------------------------------------------
async def test_9_request_ids_in_the_job_log_and_in_errors(sandbox: Any, apis: Apis,
                                                          store: Any, clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    job = await run_flow(lambda r: backup_volume(r, store=store, client=apis, volume_id=vol.id,
                                                 zone=vol.zone, timeouts=FAST,
                                                 settings=Settings()))
    assert job.state == DONE, job.error
    scaleway_calls = [c for c in job.log if c["path"].startswith("/block/")]
    assert scaleway_calls and all(len(c.get("request_id", "")) == 36 for c in scaleway_calls)
    assert any(c.get("request_id") for c in job.log if "strongroom-tmp/" in c["path"])
    job = await run_flow(lambda r: backup_volume(r, store=store, client=apis,
                                                 volume_id=str(uuid.uuid4()), zone=vol.zone,
                                                 timeouts=FAST, settings=Settings()))
    assert job.state == FAILED and REQUEST_ID.search(job.error), job.error


def test_9_calls_slow_down_before_the_rate_limit(sandbox: Any, scw_env: Any,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 clean_faults: Any) -> None:
    access, secret = sandbox.keys["readonly"]     # a key of its own: a gauge of its own
    monkeypatch.setenv("SCW_ACCESS_KEY", access)
    monkeypatch.setenv("SCW_SECRET_KEY", secret)
    sandbox.faults(rate_limit=10, rate_window=2)
    statuses: list[int | str] = []

    class Log:
        def call(self, method: str, path: str, status: int | str, ms: float) -> None:
            statuses.append(status)      # a recorder without request_id still works

    api = Apis(scw_client(), Log(), retry=RetryPolicy(attempts=8, base=0.01, cap=0.1))
    started = time.monotonic()
    for _ in range(25):
        api.block.list_volume_types(zone="fr-par-1")
    assert statuses == [200] * 25          # no 429: the calls waited for the next window
    assert time.monotonic() - started >= 2.0


def test_9_the_gauge_spreads_the_last_calls_of_a_window() -> None:
    now = [100.0]
    gauge = RateGauge(clock=lambda: now[0])
    assert gauge.pause() == 0                                   # nothing known yet
    gauge.note({"X-Ratelimit-Limit": "100, w=10", "X-Ratelimit-Remaining": "50",
                "X-Ratelimit-Reset": "8"})
    assert gauge.pause() == 0                                   # plenty left
    gauge.note({"X-Ratelimit-Limit": "100", "X-Ratelimit-Remaining": "3",
                "X-Ratelimit-Reset": "8"})
    assert gauge.pause() == pytest.approx(2.0)                  # 8 s over the 3 left + 1
    gauge.note({"X-Ratelimit-Limit": "100", "X-Ratelimit-Remaining": "0",
                "X-Ratelimit-Reset": "8"})
    assert gauge.pause() == pytest.approx(8.0)                  # none left: the window's end
    now[0] += 9
    assert gauge.pause() == 0                                   # a new window


# -- 10: realistic timing -------------------------------------------------------------------
async def test_10_backup_and_restore_end_to_end_in_realistic_timing(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    before = sandbox.set_delays(Delays.realistic_timing(0.02))
    try:
        started = time.monotonic()
        backup = await run_flow(lambda r: backup_volume(r, store=store, client=apis,
                                                        volume_id=vol.id, zone=vol.zone,
                                                        timeouts=FAST, settings=Settings()))
        assert backup.state == DONE, backup.error
        restore = await run_flow(lambda r: restore_snapshot(r, store=store, client=apis,
                                                            ref=backup.result.snapshot,
                                                            zone=vol.zone,
                                                            rename_on_clash=True, timeouts=FAST,
                                                            settings=Settings()))
        assert restore.state == DONE, restore.error
        took = time.monotonic() - started
        # 5 GB at 0.02: snapshot ~0.3 s, export ~0.26 s, import ~2.4 s
        assert took >= 2.9
        polls = [c for c in restore.log if c["method"] == "GET" and "/snapshots/" in c["path"]]
        assert len(polls) >= 3                 # the import was seen "still working"
        # a timeout shorter than the real import gives up clearly, and cleans up
        short = FAST.__class__(**{**FAST.__dict__, "import_": 0.5})
        late = await run_flow(lambda r: restore_snapshot(r, store=store, client=apis,
                                                         ref=backup.result.snapshot,
                                                         zone=vol.zone,
                                                         rename_on_clash=True, timeouts=short,
                                                         settings=Settings()))
    finally:
        sandbox.set_delays(before)
    assert late.state == FAILED and "gave up on the import" in late.error
    assert "still creating" in late.error
    apis.block.delete_volume(volume_id=restore.result.volume_id, zone=vol.zone)
    for _ in range(200):      # the given-up import's snapshot goes once it settles
        if not leftovers(apis, vol.zone, sandbox.buckets["fr-par"])["snapshots"]:
            break
        await asyncio.sleep(0.05)
    assert leftovers(apis, vol.zone, sandbox.buckets["fr-par"]) == {
        "objects": [], "uploads": [], "snapshots": []}


# -- 11: limits checked before anything starts ----------------------------------------------
async def test_11_a_volume_over_1_tb_is_marked_and_refused_before_a_snapshot(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    big = apis.block.create_volume(zone="fr-par-2", name=f"huge-{uuid.uuid4().hex[:6]}",
                                   perf_iops=5000,
                                   from_empty=v1.CreateVolumeRequestFromEmpty(size=2000 * GB))
    try:
        for _ in range(200):
            if str(apis.block.get_volume(volume_id=big.id, zone="fr-par-2").status) == \
                    "available":
                break
            await asyncio.sleep(0.05)
        listed = next(v for v in await list_inventory(apis, zones=["fr-par-2"])
                      if v.id == big.id)
        assert not listed.backupable and "too large to export (1 TB max)" in listed.reason
        report = await preflight(apis, zone="fr-par-2", volume_id=big.id,
                                 bucket=sandbox.buckets["fr-par"])
        volume_check = next(c for c in report.checks if c.name == "volume")
        assert volume_check.status == MISSING and "1 TB" in volume_check.detail
        job = await run_flow(lambda r: backup_volume(r, store=store, client=apis,
                                                     volume_id=big.id, zone="fr-par-2",
                                                     timeouts=FAST, settings=Settings()))
        assert job.state == FAILED and "too large to export (1 TB max)" in job.error
        assert not [c for c in job.log if c["method"] == "POST"]      # no snapshot made
    finally:
        await _until_deleted(apis, "fr-par-2", big.id)


async def test_11_an_sse_kms_bucket_is_refused_by_preflight_and_backup(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    bucket = sandbox.buckets["fr-par"]
    s3 = apis.s3_for_zone(vol.zone)
    report = await preflight(apis, zone=vol.zone, bucket=bucket, volume_id=vol.id)
    assert {c.name: c.status for c in report.checks}["bucket encryption"] == OK
    assert {c.name: c.status for c in report.checks}["volume"] == OK
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                "KMSMasterKeyID": str(uuid.uuid4())}}]})
    try:
        report = await preflight(apis, zone=vol.zone, bucket=bucket)
        check = next(c for c in report.checks if c.name == "bucket encryption")
        assert check.status == MISSING and "SSE-KMS" in check.detail and check.fix
        job = await run_flow(lambda r: backup_volume(r, store=store, client=apis,
                                                     volume_id=vol.id, zone=vol.zone,
                                                     timeouts=FAST, settings=Settings()))
    finally:
        s3.delete_bucket_encryption(Bucket=bucket)
    assert job.state == FAILED and "SSE-KMS" in job.error
    assert not [c for c in job.log if c["method"] == "POST"]


async def test_11_an_image_the_import_refuses_is_refused_before_any_upload(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any, tmp_path: Any) -> None:
    image = tmp_path / "child.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-u", "-f", "qcow2", "-b", "/base.raw",
                    "-F", "raw", str(image), "1G"], check=True)
    with open(image, "rb") as f:
        made = store.backup(f, name="child", source_info={"kind": "file"})
    job = await run_flow(lambda r: restore_snapshot(r, store=store, client=apis,
                                                    ref=made.snapshot.id, zone="fr-par-1",
                                                    project_id=sandbox.organization_id,
                                                    timeouts=FAST, settings=Settings()))
    assert job.state == FAILED and "backing file" in job.error
    assert job.view.error.type == UsageError.__name__
    assert job.log == []                               # nothing sent, nothing uploaded


# -- 12: kms_key_id -------------------------------------------------------------------------
async def test_12_a_restored_volume_keeps_the_original_s_kms_key(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    vol = await _volume(apis, "vault-secrets", sandbox)
    original = apis.block.get_volume(volume_id=vol.id, zone=vol.zone)
    assert original.kms_key_id
    backup = await backup_volume(None, store=store, client=apis, volume_id=vol.id,
                                 zone=vol.zone, timeouts=FAST, settings=Settings())
    assert store.resolve(backup.snapshot).source["kms_key_id"] == original.kms_key_id
    out = await restore_snapshot(None, store=store, client=apis, ref=backup.snapshot,
                                 zone=vol.zone,
                                 rename_on_clash=True, timeouts=FAST, settings=Settings())
    assert out.kms_key_id == original.kms_key_id
    assert apis.block.get_volume(volume_id=out.volume_id,
                                 zone=vol.zone).kms_key_id == original.kms_key_id
    apis.block.delete_volume(volume_id=out.volume_id, zone=vol.zone)
