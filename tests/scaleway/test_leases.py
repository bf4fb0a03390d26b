"""Leases on temporaries: runs in other processes (or machines) never adopt or remove each
other's snapshots, exports, staging objects or uploads; a dead run's are taken over once its
lease has expired; a run whose lease cannot be renewed stops. Real processes, the real SDK over
HTTP to the sandbox, and its S3 server."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import OperationError, UsageError
from engine.sandbox.qcow2 import read_qcow2
from engine.scaleway.api import Apis
from engine.scaleway.flows import backup_volume, cleanup_leftovers, restore_snapshot
from engine.scaleway.inventory import TEMP_TAG
from engine.settings import Settings
from tests.scaleway.helpers import FAST, leftovers, same_content
# the flow tests' fixtures (a fresh store, the sandbox's APIs, faults reset around a test)
from tests.scaleway.test_flows import PASS, _volume, apis, clean_faults, store  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
NOTHING: dict[str, list[Any]] = {"objects": [], "uploads": [], "snapshots": []}


def _driver(sandbox: Any, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, **sandbox.env, "STRONGROOM_PASSPHRASE": PASS}
    return subprocess.Popen([sys.executable, "-m", "tests.scaleway.lease_driver", *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    return json.loads(out)


async def _until_held(hold: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    while not hold.with_suffix(".held").exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before its transfer: {proc.communicate()}")
        assert time.monotonic() < deadline, "the run never reached its transfer"
        await asyncio.sleep(0.05)


def _touched(calls: list[list[Any]], snapshot_id: str) -> list[list[Any]]:
    return [c for c in calls if snapshot_id in c[1]]


async def _exported(apis: Apis, vol: Any, bucket: str, tags: list[str]) -> tuple[str, str]:
    """What a run elsewhere made: a temp snapshot of ``vol`` and its export in the bucket."""
    snap = apis.block.create_snapshot(volume_id=vol.id, public=False, zone=vol.zone,
                                      name="elsewhere", tags=[TEMP_TAG, *tags])
    await _settle(apis, vol.zone, snap.id)
    key = f"strongroom-tmp/{vol.id}/{snap.id}.qcow2"
    apis.block.export_snapshot_to_object_storage(snapshot_id=snap.id, bucket=bucket, key=key,
                                                 zone=vol.zone)
    await _settle(apis, vol.zone, snap.id)
    return snap.id, key


def _lease(apis: Apis, zone: str, bucket: str, owner: str, expires: float,
           snapshot_id: str | None = None, keys: tuple[str, ...] = ()) -> None:
    """Another run's lease, written as the format says (engine/scaleway/leases.py): tags on
    its snapshot, and its lease object naming the snapshot and the keys."""
    if snapshot_id:
        apis.block.update_snapshot(snapshot_id=snapshot_id, zone=zone, tags=[
            TEMP_TAG, f"strongroom-job={owner}", f"strongroom-owner={owner}",
            f"strongroom-lease={int(expires)}"])
    record = {"owner": owner, "expires": expires, "job": owner, "host": "elsewhere", "pid": 1,
              "snapshots": [snapshot_id] if snapshot_id else [], "keys": list(keys)}
    apis.s3_for_zone(zone).put_object(Bucket=bucket, Key=f"strongroom-tmp/leases/{owner}.json",
                                      Body=json.dumps(record).encode())


async def _settle(apis: Apis, zone: str, snapshot_id: str) -> None:
    for _ in range(400):
        if str(apis.block.get_snapshot(snapshot_id=snapshot_id, zone=zone).status) == \
                "available":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("snapshot did not settle")


def _exists(apis: Apis, zone: str, bucket: str, snapshot_id: str, key: str) -> bool:
    snaps = {s.id for s in apis.block.list_snapshots_all(zone=zone, include_deleted=False)}
    objects = apis.s3_for_zone(zone).list_objects_v2(Bucket=bucket, Prefix=key)
    return snapshot_id in snaps and bool(objects.get("Contents"))


@pytest.mark.slow
async def test_two_processes_back_up_the_same_volume_at_once(
        sandbox: Any, apis: Apis, clean_faults: Any, tmp_path: Path) -> None:
    from engine.store import Store

    vol = await _volume(apis, "dev-scratch", sandbox)
    bucket = sandbox.buckets["fr-par"]
    url = str(tmp_path / "store")
    Store.init(url, PASS).close()
    # A reaches its transfer (its export is in the bucket); B starts then, finds A's export
    # and A's snapshot, and reaches its own transfer; then both go on at once.
    a = _driver(sandbox, "backup", url, vol.id, vol.zone, bucket, str(tmp_path / "a"))
    await _until_held(tmp_path / "a", a)
    b = _driver(sandbox, "backup", url, vol.id, vol.zone, bucket, str(tmp_path / "b"))
    await _until_held(tmp_path / "b", b)
    (tmp_path / "a.go").touch()
    (tmp_path / "b.go").touch()
    ra, rb = await asyncio.gather(asyncio.to_thread(_result, a), asyncio.to_thread(_result, b))

    oa, ob = ra["outcome"], rb["outcome"]
    # Neither adopted the other's export: each made and read its own...
    assert (oa["resumed"], ob["resumed"]) == (False, False)
    assert oa["scw_snapshot_id"] != ob["scw_snapshot_id"]
    # ...and neither made a single call about the other's snapshot or export.
    assert _touched(rb["calls"], oa["scw_snapshot_id"]) == []
    assert _touched(ra["calls"], ob["scw_snapshot_id"]) == []
    # The heartbeat renewed the leases while the runs were held.
    assert any(c[0] == "PATCH" for c in ra["calls"])
    # Each stored image is the volume, byte for byte.
    with Store.open(url, PASS) as store:
        for out in (oa, ob):
            image, raw = tmp_path / f"{out['snapshot']}.qcow2", tmp_path / f"{out['snapshot']}"
            store.restore(out["snapshot"], str(image))
            read_qcow2(image, raw)
            assert same_content(sandbox.volume_path(vol.id), raw)
    # Nothing is left: no snapshot, no staging object, no upload, no lease object.
    assert leftovers(apis, vol.zone, bucket) == NOTHING


async def test_a_live_lease_is_neither_adopted_nor_swept_an_expired_one_is(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    bucket = sandbox.buckets["fr-par"]
    snap_id, key = await _exported(apis, vol, bucket, ["strongroom-job=elsewhere"])
    _lease(apis, vol.zone, bucket, "elsewhere", time.time() + 600, snap_id, (key,))

    out = await backup_volume(None, store=store, client=apis, volume_id=vol.id, zone=vol.zone,
                              timeouts=FAST, settings=Settings())
    assert not out.resumed and out.scw_snapshot_id != snap_id
    removed = await cleanup_leftovers(apis, vol.zone, bucket, min_age=0, volume_id=vol.id)
    assert not [r for r in removed if snap_id in r or "elsewhere" in r]
    assert _exists(apis, vol.zone, bucket, snap_id, key)

    # The other run died: once its lease has expired, its export is taken over...
    _lease(apis, vol.zone, bucket, "elsewhere", time.time() - 1, snap_id, (key,))
    out = await backup_volume(None, store=store, client=apis, volume_id=vol.id, zone=vol.zone,
                              timeouts=FAST, settings=Settings())
    assert out.resumed and out.scw_snapshot_id == snap_id
    # ...and nothing of it is left, its lease object included.
    assert leftovers(apis, vol.zone, bucket) == NOTHING


async def test_an_expired_lease_is_swept_whatever_its_age_a_live_one_never(
        sandbox: Any, apis: Apis, clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    bucket = sandbox.buckets["fr-par"]
    s3 = apis.s3_for_zone(vol.zone)
    live, dead = "strongroom-tmp/restore/live/x.qcow2", "strongroom-tmp/restore/dead/x.qcow2"
    uploads = {k: s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"]
               for k in (live, dead)}
    dead_snap, dead_key = await _exported(apis, vol, bucket, ["strongroom-job=dead"])
    _lease(apis, vol.zone, bucket, "live", time.time() + 600, keys=(live,))
    _lease(apis, vol.zone, bucket, "dead", time.time() - 1, dead_snap, (dead, dead_key))
    try:
        # Minutes old, under the hour: without leases nothing here would be swept yet.
        removed = await cleanup_leftovers(apis, vol.zone, bucket, min_age=3600)
        assert set(removed) >= {f"upload s3://{bucket}/{dead}", f"snapshot {dead_snap}",
                                f"s3://{bucket}/{dead_key}",
                                f"s3://{bucket}/strongroom-tmp/leases/dead.json"}
        # Whatever the age, a live lease's upload stays, and so does its lease object.
        removed = await cleanup_leftovers(apis, vol.zone, bucket, min_age=0)
        assert not [r for r in removed if "/live" in r]
        assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket)
                .get("Uploads", [])] == [live]
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key=live, UploadId=uploads[live])
        s3.delete_object(Bucket=bucket, Key="strongroom-tmp/leases/live.json")
    assert leftovers(apis, vol.zone, bucket) == NOTHING


def _named(apis: Apis, zone: str, name: str) -> list[Any]:
    return [v for v in apis.block.list_volumes_all(zone=zone, include_deleted=False)
            if v.name == name or v.name.startswith(f"{name}-restored-")]


@pytest.mark.slow
@pytest.mark.parametrize("at", ["upload", "import-from-object-storage", "volumes"])
async def test_a_killed_restore_leaves_nothing_once_rerun_and_one_volume(
        sandbox: Any, apis: Apis, clean_faults: Any, tmp_path: Path, at: str) -> None:
    """SIGKILL while the upload is open, once the import is asked for, once the volume is: the
    rerun (its lease ten minutes from expiry) sweeps what the dead run made, resumes its
    half-made volume rather than make a second, and leaves nothing behind."""
    from engine.store import Store

    vol = await _volume(apis, "dev-scratch", sandbox)
    bucket = sandbox.buckets["fr-par"]
    url = str(tmp_path / "store")
    Store.init(url, PASS).close()
    with Store.open(url, PASS) as store:
        backup = await backup_volume(None, store=store, client=apis, volume_id=vol.id,
                                     zone=vol.zone, timeouts=FAST, settings=Settings())
    name = f"killed-{at[:6]}-{os.getpid()}"
    before = sandbox.world.delays
    # Slow enough that the dead run's import and volume are still being made at the rerun.
    sandbox.set_delays(dataclasses.replace(before, create=2.0, import_=2.0))
    try:
        run = _driver(sandbox, "restore", url, backup.snapshot, vol.zone, bucket, name,
                      str(tmp_path / "hold"), at)
        await _until_held(tmp_path / "hold", run)
        run.kill()
        run.wait()
        left = leftovers(apis, vol.zone, bucket)
        assert left["uploads"] if at == "upload" else left["snapshots"]
        assert bool(_named(apis, vol.zone, name)) == (at == "volumes")

        with Store.open(url, PASS) as store:
            out = await restore_snapshot(None, store=store, client=apis, ref=backup.snapshot,
                                         zone=vol.zone, name=name, timeouts=FAST,
                                         settings=Settings())
    finally:
        sandbox.set_delays(before)
    # One volume of that name, and no snapshot, staging object, upload or lease object of
    # either run is left.
    assert out.name == name
    assert [v.id for v in _named(apis, vol.zone, name)] == [out.volume_id]
    assert leftovers(apis, vol.zone, bucket) == NOTHING
    assert out.resumed == (at == "volumes")
    restored = apis.block.get_volume(volume_id=out.volume_id, zone=vol.zone)
    assert not [t for t in restored.tags if t.startswith("strongroom-")]
    assert same_content(sandbox.volume_path(vol.id), sandbox.volume_path(out.volume_id))
    apis.block.delete_volume(volume_id=out.volume_id, zone=vol.zone)


@pytest.mark.slow
async def test_a_restore_leaves_a_live_restores_work_alone(
        sandbox: Any, apis: Apis, clean_faults: Any, tmp_path: Path) -> None:
    """Another process's restore, alive, has made its volume: a restore into the same name is
    refused (not resumed), and one into another name sweeps nothing of it."""
    from engine.store import Store

    vol = await _volume(apis, "dev-scratch", sandbox)
    bucket = sandbox.buckets["fr-par"]
    url = str(tmp_path / "store")
    Store.init(url, PASS).close()
    with Store.open(url, PASS) as store:
        backup = await backup_volume(None, store=store, client=apis, volume_id=vol.id,
                                     zone=vol.zone, timeouts=FAST, settings=Settings())
    name = f"live-{os.getpid()}"
    run = _driver(sandbox, "restore", url, backup.snapshot, vol.zone, bucket, name,
                  str(tmp_path / "hold"), "volumes")
    try:
        await _until_held(tmp_path / "hold", run)
        theirs = leftovers(apis, vol.zone, bucket)
        assert theirs["snapshots"] and len(_named(apis, vol.zone, name)) == 1
        with Store.open(url, PASS) as store:
            with pytest.raises(UsageError, match="being restored right now by another run"):
                await restore_snapshot(None, store=store, client=apis, ref=backup.snapshot,
                                       zone=vol.zone, name=name, timeouts=FAST,
                                       settings=Settings(), leftovers_min_age=0)
            out = await restore_snapshot(None, store=store, client=apis, ref=backup.snapshot,
                                         zone=vol.zone, name=f"{name}-other", timeouts=FAST,
                                         settings=Settings(), leftovers_min_age=0)
        assert not out.resumed
        left = leftovers(apis, vol.zone, bucket)
        assert left["snapshots"] == theirs["snapshots"]
        assert set(theirs["objects"]) <= set(left["objects"])
    finally:
        (tmp_path / "hold.go").touch()
    done = _result(run)["outcome"]
    assert done["name"] == name and not done["resumed"]
    assert leftovers(apis, vol.zone, bucket) == NOTHING
    for volume_id in (done["volume_id"], out.volume_id):
        apis.block.delete_volume(volume_id=volume_id, zone=vol.zone)


class _SweepMidUpload:
    """A reporter that, once the restore's upload is open, has another process sweep with no
    minimum age (only the store's thread waits for it)."""

    def __init__(self, sandbox: Any, zone: str, bucket: str) -> None:
        self.sandbox, self.zone, self.bucket = sandbox, zone, bucket
        self.swept: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def phase(self, name: str, total: int = 0, message: str = "") -> None: ...
    def call(self, method: str, path: str, status: int | str, ms: float) -> None: ...

    def progress(self, done: int, total: int | None = None, message: str | None = None,
                 **extra: Any) -> None:
        with self._lock:
            if self.swept is None:
                self.swept = _result(_driver(self.sandbox, "cleanup", self.zone, self.bucket))


async def test_another_process_never_sweeps_a_running_restores_upload(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    bucket = sandbox.buckets["fr-par"]
    backup = await backup_volume(None, store=store, client=apis, volume_id=vol.id,
                                 zone=vol.zone, timeouts=FAST, settings=Settings())
    reporter = _SweepMidUpload(sandbox, vol.zone, bucket)
    out = await restore_snapshot(reporter, store=store, client=apis, ref=backup.snapshot,
                                 zone=vol.zone,
                                 rename_on_clash=True, timeouts=FAST, settings=Settings())
    assert reporter.swept is not None
    assert not [r for r in reporter.swept["removed"] if "strongroom-tmp/restore/" in r]
    assert same_content(sandbox.volume_path(vol.id), sandbox.volume_path(out.volume_id))
    assert leftovers(apis, vol.zone, bucket) == NOTHING
    apis.block.delete_volume(volume_id=out.volume_id, zone=vol.zone)


async def test_a_lease_that_cannot_be_renewed_stops_the_run(
        sandbox: Any, apis: Apis, store: Any, clean_faults: Any) -> None:
    vol = await _volume(apis, "dev-scratch", sandbox)
    bucket = sandbox.buckets["fr-par"]
    timeouts = dataclasses.replace(FAST, lease=1.0, heartbeat=0.2)
    # Updates (the tags' renewal) fail from the start, and the export takes its time.
    export_delay = sandbox.world.delays.export
    # long beside the 1 s lease: under load the run takes seconds to notice, never eight
    sandbox.world.delays.export = exporting = 8.0
    sandbox.faults(fail_updates=True)
    try:
        started = time.monotonic()
        with pytest.raises(OperationError, match="lease .* could not be renewed") as err:
            await backup_volume(None, store=store, client=apis, volume_id=vol.id,
                                zone=vol.zone, timeouts=timeouts, settings=Settings())
        assert time.monotonic() - started < exporting  # stopped before the export was done
        assert "503" in str(err.value) and len(str(err.value).splitlines()) == 1
    finally:
        sandbox.faults()
        sandbox.world.delays.export = export_delay
    assert store.snapshots() == []
    # Its temporaries were left as they were: a later sweep removes them, as a dead run's,
    # although they are seconds old.
    left = leftovers(apis, vol.zone, bucket)
    assert left["snapshots"]
    for snapshot_id in left["snapshots"]:
        await _settle(apis, vol.zone, snapshot_id)
    await cleanup_leftovers(apis, vol.zone, bucket, min_age=3600)
    assert leftovers(apis, vol.zone, bucket) == NOTHING


async def test_of_two_runs_claiming_one_export_at_once_at_most_one_gets_it(
        sandbox: Any, apis: Apis, clean_faults: Any) -> None:
    from engine.scaleway.leases import Lease

    zone, bucket = "fr-par-1", sandbox.buckets["fr-par"]
    s3 = apis.s3_for_zone(zone)
    key = "strongroom-tmp/claimed/export.qcow2"
    runs = [Lease(apis, zone, bucket, s3, job=f"claim-{i}") for i in range(3)]
    try:
        for run in runs:
            await run.start()
        # Each writes its claim, then reads every lease: the later reader sees the other's.
        contested = await asyncio.gather(*(r.claim([key], whole=True) for r in runs[:2]))
        winners = [r for r, lost in zip(runs, contested) if not lost]
        assert len(winners) <= 1
        for run, lost in zip(runs, contested):
            assert (key in run.keys) == (not lost)  # the loser no longer names it
        # A claim after a live one is let go.
        if winners:
            assert await runs[2].claim([key], whole=True) == {key}
    finally:
        for run in runs:
            await run.release()


def test_lease_tags_and_records_read_back() -> None:
    from engine.scaleway.leases import (Holders, LeaseRecord, lease_tags, tag_lease,
                                        without_lease)

    tags = [TEMP_TAG, "strongroom-job=j", *lease_tags("me", 1000.2)]
    assert tag_lease(tags) == ("me", 1001.0)  # rounded up: never shorter
    assert without_lease(tags) == [TEMP_TAG, "strongroom-job=j"]
    assert tag_lease([TEMP_TAG]) is None
    assert tag_lease(["strongroom-owner=me", "strongroom-lease=soon"]) == ("me", 0.0)
    rec = LeaseRecord(owner="me", expires=2000.0, keys=["k"], snapshots=["s"])
    assert LeaseRecord.from_json(rec.to_json(), "me") == rec
    assert LeaseRecord.from_json(b"{not json", "x") == LeaseRecord(owner="x", expires=0.0)
    holders = Holders([rec], now=1500.0)
    assert holders.for_key("k").holder == "me"
    assert holders.for_snapshot("s", []).holder == "me"
    assert holders.for_snapshot("t", tags).holder is None  # tagged, expired at 1001
    assert holders.for_snapshot("t", tags).leased
    assert not holders.for_key("other").leased


def test_a_lease_names_its_process_and_a_reader_here_sees_it_gone() -> None:
    from engine.scaleway.leases import LeaseRecord, process_gone, this_process

    me = this_process()
    assert me and not process_gone(me)
    rec = LeaseRecord(owner="me", expires=2000.0, process=me)
    assert LeaseRecord.from_json(rec.to_json(), "me").process == me
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/proc/{child.pid}/stat").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        started = Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[19]
        machine = me.rsplit(":", 2)[0]
        theirs = f"{machine}:{child.pid}:{started}"
        assert not process_gone(theirs)
        assert process_gone(f"{machine}:{child.pid}:{int(started) + 1}")  # a reused pid
    finally:
        child.kill()
        child.wait()
    assert process_gone(theirs)
    # Another machine's process, or none named: only the lease's expiry can tell.
    assert not process_gone(f"other-boot:{machine.rsplit(':', 1)[1]}:{child.pid}:{started}")
    assert not process_gone("")
