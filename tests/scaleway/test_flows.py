"""The backup and restore flows against the running sandbox, through the real SDK and boto3,
into a real store."""
from __future__ import annotations

import asyncio
import io
import random
from typing import Any

import pytest

from engine.errors import OperationError, UsageError
from engine.jobs import CANCELLED, DONE, JobRunner
from engine.scaleway.api import Apis, RetryPolicy
from engine.scaleway.config import scw_client
from engine.settings import Settings
from engine.scaleway.flows import backup_volume, cleanup_leftovers, restore_snapshot
from engine.scaleway.inventory import list_inventory
from tests.scaleway.helpers import FAST, leftovers, run_flow, same_content, start_flow

PASS = "correct horse battery staple"


@pytest.fixture
def store(tmp_path: Any) -> Any:
    from engine.store import Store

    s = Store.init(str(tmp_path / "store"), PASS)
    yield s
    s.close()


@pytest.fixture
def apis(scw_env: Any) -> Apis:
    return Apis(scw_client(), retry=RetryPolicy(attempts=8, base=0.01, cap=0.1))


@pytest.fixture
def clean_faults(sandbox: Any) -> Any:
    sandbox.faults()
    yield sandbox
    sandbox.faults()


_FILLED: set[str] = set()


async def _volume(apis: Apis, name: str, sandbox: Any = None) -> Any:
    """A seeded volume, with a few MiB of random data written into it once, so that equality
    after a restore and deduplication are about real bytes. The writes go to free space of its
    ext4 (past group 0's metadata), so the shared sandbox's volume stays a valid file system
    for tests that run later (tests/sandbox/test_content.py checks that)."""
    volumes = await list_inventory(apis, zones=("fr-par-1", "fr-par-2", "nl-ams-1"))
    vol = next(v for v in volumes if v.name == name)
    if sandbox is not None and vol.id not in _FILLED:
        _FILLED.add(vol.id)
        rng = random.Random(vol.id)
        with open(sandbox.volume_path(vol.id), "r+b") as f:
            for offset, length in ((600 << 20, 3 << 20), (1_000_000_000, 2 << 20),
                                   (vol.size - (1 << 20), 1 << 20)):
                f.seek(offset)
                f.write(rng.randbytes(length))
    return vol


_run = run_flow


async def test_backup_then_restore_gives_the_same_bytes(sandbox: Any, apis: Apis, store: Any,
                                                        clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    bucket = sandbox.buckets["fr-par"]
    job = await _run(lambda r: backup_volume(r, store=store, client=apis, volume_id=vol.id,
                                             zone=vol.zone, timeouts=FAST, settings=Settings()))
    assert job.state == DONE, job.error
    backup = job.result
    assert [p.name for p in job.phases] == ["snapshot", "export", "transfer", "commit",
                                            "cleanup"]
    assert any(c["path"].startswith("/block/v1/zones/") for c in job.log)
    assert any(c["method"] == "GET" and bucket in c["path"] for c in job.log)
    assert store.resolve(backup.snapshot).source["volume_id"] == vol.id
    assert leftovers(apis, vol.zone, bucket) == {"objects": [], "uploads": [], "snapshots": []}

    job = await _run(lambda r: restore_snapshot(r, store=store, client=apis,
                                                ref=backup.snapshot, zone=vol.zone,
                                                rename_on_clash=True,
                                                timeouts=FAST, settings=Settings()))
    assert job.state == DONE, job.error
    restored = job.result
    assert [p.name for p in job.phases] == ["upload", "import", "volume", "cleanup"]
    new = apis.block.get_volume(volume_id=restored.volume_id, zone=vol.zone)
    assert new.name != vol.name and new.name.startswith(vol.name)  # no clash
    assert str(new.type_) == vol.type and new.size == vol.size
    assert str(new.status) == "available"
    assert same_content(sandbox.volume_path(vol.id), sandbox.volume_path(new.id))
    assert leftovers(apis, vol.zone, bucket) == {"objects": [], "uploads": [], "snapshots": []}

    # A second backup of the unchanged volume adds almost nothing to the store.
    job = await _run(lambda r: backup_volume(r, store=store, client=apis, volume_id=vol.id,
                                             zone=vol.zone, timeouts=FAST, settings=Settings()))
    assert job.state == DONE, job.error
    assert job.result.stored_bytes <= max(backup.stored_bytes // 20, 256 * 1024)
    assert 0 <= job.counters["stored_bytes"] <= job.result.stored_bytes  # live dedup figure
    apis.block.delete_volume(volume_id=new.id, zone=vol.zone)


async def test_restore_bigger_faster_elsewhere_and_never_smaller(sandbox: Any, apis: Apis,
                                                                 store: Any,
                                                                 clean_faults: Any) -> None:
    vol = await _volume(apis, "vault-secrets", sandbox)
    backup = await backup_volume(None, store=store, client=apis, volume_id=vol.id,
                                 zone=vol.zone, timeouts=FAST, settings=Settings())
    with pytest.raises(UsageError, match="only grow"):
        await restore_snapshot(None, store=store, client=apis, ref=backup.snapshot,
                               size=vol.size - 1_000_000_000, timeouts=FAST,
                               settings=Settings())
    out = await restore_snapshot(None, store=store, client=apis, ref=backup.snapshot[:8],
                                 zone="nl-ams-1", name="vault-copy", iops=15000,
                                 size=vol.size + 5_000_000_000, timeouts=FAST,
                                 settings=Settings())
    new = apis.block.get_volume(volume_id=out.volume_id, zone="nl-ams-1")
    assert (new.name, str(new.type_), new.size) == ("vault-copy", "sbs_15k",
                                                    vol.size + 5_000_000_000)
    assert same_content(sandbox.volume_path(vol.id), sandbox.volume_path(new.id))
    apis.block.delete_volume(volume_id=new.id, zone="nl-ams-1")


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_backup_survives_429_503_and_a_dropped_s3_connection(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any, concurrency: int) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    # the dice restarts from its seed whenever faults are set: the same calls fail every run
    sandbox.faults(rate_429=0.25, rate_503=0.15)
    runner = JobRunner()
    # Cut the next S3 bodies once the transfer starts, so the cuts hit the object's GETs.
    runner.subscribe(lambda ev: sandbox.faults(rate_429=0.25, rate_503=0.15, drop_s3=3)
                     if ev.kind == "phase" and ev.phase == "transfer" else None)
    job = await _run(lambda r: backup_volume(r, store=store, client=apis, volume_id=vol.id,
                                             zone=vol.zone, timeouts=FAST, settings=Settings(),
                                             part_size=256 << 10, keep=True,
                                             concurrency=concurrency), runner)
    sandbox.faults()
    assert job.state == DONE, job.error
    statuses = {c["status"] for c in job.log}
    assert 429 in statuses or 503 in statuses
    # The cut bodies were asked for again: more GETs of the object than without cuts.
    gets = [c for c in job.log if c["method"] == "GET" and "strongroom-tmp/" in c["path"]]
    uncut = -(-job.result.bytes // (256 << 10)) if concurrency > 1 else 1
    assert len(gets) > uncut
    # ...and what was stored is the exported object, byte for byte.
    bucket = sandbox.buckets["fr-par"]
    key = f"strongroom-tmp/{vol.id}/{job.result.scw_snapshot_id}.qcow2"
    exported = apis.s3_for_zone(vol.zone).get_object(Bucket=bucket, Key=key)["Body"].read()
    restored = io.BytesIO()
    store.restore(job.result.snapshot, restored)
    assert restored.getvalue() == exported
    removed = await cleanup_leftovers(apis, vol.zone, bucket, volume_id=vol.id)
    assert len(removed) == 2
    assert leftovers(apis, vol.zone, bucket)["snapshots"] == []


async def test_failed_export_fails_clearly_and_leaves_nothing(sandbox: Any, apis: Apis,
                                                             store: Any,
                                                             clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    sandbox.faults(fail_export=True)
    job = await _run(lambda r: backup_volume(r, store=store, client=apis, volume_id=vol.id,
                                             zone=vol.zone, timeouts=FAST, settings=Settings()))
    sandbox.faults()
    assert job.state == "failed"
    assert "export" in job.error and "failed" in job.error
    assert len(job.error.splitlines()) == 1
    assert leftovers(apis, vol.zone, sandbox.buckets["fr-par"]) == {
        "objects": [], "uploads": [], "snapshots": []}
    assert store.snapshots() == []


@pytest.mark.parametrize("phase", ["snapshot", "export", "transfer"])
async def test_cancel_in_any_phase_cleans_up(sandbox: Any, apis: Apis, store: Any,
                                             clean_faults: Any, phase: str) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    runner = JobRunner()
    reached = asyncio.Event()
    runner.subscribe(lambda ev: reached.set() if ev.phase == phase else None)
    if phase == "transfer":
        sandbox.faults(latency_ms=0)
    job = start_flow(runner, lambda r: backup_volume(r, store=store, client=apis,
                                                     volume_id=vol.id, zone=vol.zone,
                                                     timeouts=FAST, settings=Settings(),
                                                     part_size=1 << 20, concurrency=1))
    await asyncio.wait_for(reached.wait(), 30)
    runner.cancel(job.id)
    await runner.wait(job.id)
    assert job.state in (CANCELLED, DONE)
    if job.state == CANCELLED:
        assert store.snapshots() == []
    assert leftovers(apis, vol.zone, sandbox.buckets["fr-par"]) == {
        "objects": [], "uploads": [], "snapshots": []}


async def test_vanished_volume_and_wrong_region_bucket_say_what_to_do(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    with pytest.raises(OperationError, match="no longer exists.*refresh the inventory"):
        await backup_volume(None, store=store, client=apis,
                            volume_id="11111111-2222-3333-4444-555555555555", zone="fr-par-1",
                            timeouts=FAST, settings=Settings())
    vol = await _volume(apis, "dev-scratch", sandbox)
    with pytest.raises(OperationError, match="region"):
        await backup_volume(None, store=store, client=apis, volume_id=vol.id, zone=vol.zone,
                            bucket=sandbox.buckets["nl-ams"], timeouts=FAST,
                            settings=Settings())
    with pytest.raises(OperationError, match="does not exist"):
        await backup_volume(None, store=store, client=apis, volume_id=vol.id, zone=vol.zone,
                            bucket="no-such-bucket", timeouts=FAST, settings=Settings())
    assert leftovers(apis, vol.zone, sandbox.buckets["fr-par"])["snapshots"] == []


@pytest.mark.parametrize("phase", ["upload", "import", "volume"])
async def test_cancelled_restore_leaves_no_volume_snapshot_or_object(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any, phase: str) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    backup = await backup_volume(None, store=store, client=apis, volume_id=vol.id,
                                 zone=vol.zone, timeouts=FAST, settings=Settings())
    before = {v.id for v in apis.block.list_volumes_all(zone=vol.zone, include_deleted=False)}
    runner = JobRunner()
    reached = asyncio.Event()
    runner.subscribe(lambda ev: reached.set() if ev.phase == phase else None)
    job = start_flow(runner, lambda r: restore_snapshot(r, store=store, client=apis,
                                                        ref=backup.snapshot, zone=vol.zone,
                                                        rename_on_clash=True,
                                                        timeouts=FAST, settings=Settings()))
    await asyncio.wait_for(reached.wait(), 30)
    runner.cancel(job.id)
    await runner.wait(job.id)
    assert job.state == CANCELLED
    after = {v.id for v in apis.block.list_volumes_all(zone=vol.zone, include_deleted=False)}
    assert after == before
    assert leftovers(apis, vol.zone, sandbox.buckets["fr-par"]) == {
        "objects": [], "uploads": [], "snapshots": []}


async def test_resume_reuses_a_crashed_runs_export_and_leftovers_are_removed(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    bucket = sandbox.buckets["fr-par"]
    # A crashed run: snapshot made and exported, then nothing.
    snap = apis.block.create_snapshot(volume_id=vol.id, public=False, zone=vol.zone,
                                      name="crashed", tags=["strongroom-temp",
                                                            "strongroom-job=dead"])
    await _settle(apis, vol.zone, snap.id)
    key = f"strongroom-tmp/{vol.id}/{snap.id}.qcow2"
    apis.block.export_snapshot_to_object_storage(snapshot_id=snap.id, bucket=bucket, key=key,
                                                 zone=vol.zone)
    await _settle(apis, vol.zone, snap.id)
    # ...and a stray object of another crashed run, long gone.
    s3 = apis.s3_for_zone(vol.zone)
    s3.put_object(Bucket=bucket, Key="strongroom-tmp/other/stale.qcow2", Body=b"x")
    out = await backup_volume(None, store=store, client=apis, volume_id=vol.id, zone=vol.zone,
                              timeouts=FAST, settings=Settings())
    assert out.resumed and out.scw_snapshot_id == snap.id
    assert leftovers(apis, vol.zone, bucket)["snapshots"] == []
    removed = await cleanup_leftovers(apis, vol.zone, bucket, min_age=0)
    assert "s3://%s/strongroom-tmp/other/stale.qcow2" % bucket in removed
    assert leftovers(apis, vol.zone, bucket)["objects"] == []


async def _settle(apis: Apis, zone: str, snapshot_id: str) -> None:
    for _ in range(200):
        if str(apis.block.get_snapshot(snapshot_id=snapshot_id, zone=zone).status) == \
                "available":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("snapshot did not settle")


async def test_several_volumes_at_once_under_a_limit(sandbox: Any, apis: Apis, store: Any,
                                                     clean_faults: Any) -> None:
    vols = [await _volume(apis, "dev-scratch", sandbox), await _volume(apis, "vault-secrets",
                                                                       sandbox)]
    runner = JobRunner(concurrency=2)
    running: list[int] = []
    runner.subscribe(lambda ev: running.append(
        sum(v.state == "running" for v in runner.views())))
    jobs = [start_flow(runner, lambda r, vol=vol: backup_volume(
        r, store=store, client=apis, volume_id=vol.id, zone=vol.zone, timeouts=FAST,
        settings=Settings())) for vol in vols]
    for job in jobs:
        await runner.wait(job.id)
    assert [j.state for j in jobs] == [DONE, DONE], [j.error for j in jobs]
    assert {j.result.volume_id for j in jobs} == {v.id for v in vols}
    assert max(running) == 2
    assert {s.source["volume_id"] for s in store.snapshots()} >= {v.id for v in vols}


async def test_backup_records_the_time_it_is_given(sandbox: Any, apis: Apis, store: Any,
                                                   clean_faults: Any) -> None:
    """`strongroom backup --time`: the flow passes the time through to the store snapshot."""
    vol = await _volume(apis, "dev-scratch", sandbox)
    out = await backup_volume(None, store=store, client=apis, volume_id=vol.id, zone=vol.zone,
                              timeouts=FAST, settings=Settings(),
                              snapshot_time="2020-01-02T03:04:05.000000Z")
    assert store.resolve(out.snapshot).time == "2020-01-02T03:04:05.000000Z"
