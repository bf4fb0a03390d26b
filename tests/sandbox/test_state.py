"""A restarted sandbox has the same volumes and snapshots; the seed fixes the inventory."""
from __future__ import annotations

import os

import scaleway
from scaleway.block import v1

from engine.sandbox import Delays, Sandbox, seed
from engine.sandbox.state import State, sparse_copy
from tests.sandbox.helpers import GB, settle

FAST = Delays(0.05, 0.05, 0.05, 0.05, 0.05)


def _client(sb: Sandbox) -> scaleway.Client:
    env = sb.env
    return scaleway.Client(access_key=env["SCW_ACCESS_KEY"], secret_key=env["SCW_SECRET_KEY"],
                           api_url=env["SCW_API_URL"],
                           default_organization_id=env["SCW_DEFAULT_ORGANIZATION_ID"],
                           default_project_id=env["SCW_DEFAULT_PROJECT_ID"],
                           default_region="fr-par", default_zone="fr-par-1")


def test_restart_keeps_volumes_snapshots_and_objects(tmp_path):
    with Sandbox(tmp_path, profile="small", delays=FAST) as sb:
        api = v1.BlockV1API(_client(sb))
        volume = settle(api.get_volume, volume_id=api.create_volume(
            name="kept", perf_iops=15000, tags=["x"],
            from_empty=v1.CreateVolumeRequestFromEmpty(size=7 * GB)).id)
        with open(sb.volume_path(volume.id), "r+b") as f:
            f.write(b"survives a restart")
        snap = settle(api.get_snapshot, snapshot_id=api.create_snapshot(
            volume_id=volume.id, public=False, name="kept-snap").id)
        api.export_snapshot_to_object_storage(snapshot_id=snap.id,
                                              bucket=sb.buckets["fr-par"], key="kept.qcow2")
        settle(api.get_snapshot, snapshot_id=snap.id)
        before = {v.id: (v.name, v.size, v.type_, v.tags)
                  for v in api.list_volumes_all(include_deleted=False)}
        keys, org = sb.keys, sb.organization_id
    with Sandbox(tmp_path, profile="small", delays=FAST) as sb:
        assert sb.keys == keys and sb.organization_id == org
        api = v1.BlockV1API(_client(sb))
        after = {v.id: (v.name, v.size, v.type_, v.tags)
                 for v in api.list_volumes_all(include_deleted=False)}
        assert after == before
        assert api.get_snapshot(snapshot_id=snap.id).name == "kept-snap"
        with open(sb.volume_path(volume.id), "rb") as f:
            assert f.read(18) == b"survives a restart"
        head = sb.world.storage.client("fr-par").head_object(Bucket=sb.buckets["fr-par"],
                                                             Key="kept.qcow2")
        assert head["ContentLength"] > 0


def test_same_seed_same_inventory_other_seed_other_ids():
    assert seed.build(7) == seed.build(7)
    first, other = seed.build(7), seed.build(8)
    assert set(first["volumes"]) != set(other["volumes"])
    names = sorted(v["name"] for v in first["volumes"].values())
    assert [n for n in names if not n.startswith("pvc-")] == \
        sorted(v["name"] for v in other["volumes"].values() if not v["name"].startswith("pvc-"))


def test_interrupted_export_ends_available_after_restart(tmp_path):
    state = State(tmp_path)
    doc = seed.build(0)
    snap = next(iter(doc["snapshots"].values()))
    snap["status"], snap["_job"] = "exporting", "export"
    state.init(doc)
    again = State(tmp_path)
    again.load()
    assert again.coll("snapshots")[snap["id"]]["status"] == "available"


def test_sparse_copy_copies_data_and_keeps_holes(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    with open(src, "wb") as f:
        f.truncate(4 * GB)
        f.seek(GB)
        f.write(b"data" * 1024)
    sparse_copy(src, dst, size=5 * GB)
    assert dst.stat().st_size == 5 * GB
    assert os.stat(dst).st_blocks * 512 < 10 * 1024 * 1024
    with open(dst, "rb") as f:
        f.seek(GB)
        assert f.read(4096) == b"data" * 1024


def test_transitions_take_the_configured_time(sandbox, scw_client):
    import time

    api = v1.BlockV1API(scw_client())
    before = sandbox.world.delays.create
    sandbox.world.delays.create = 0.8
    try:
        started = time.monotonic()
        created = api.create_volume(name="slow", perf_iops=5000,
                                    from_empty=v1.CreateVolumeRequestFromEmpty(size=5 * GB))
        assert created.status == "creating"
        # A read may come late on a loaded machine: it may say "available" only once the
        # configured time has passed, never before.
        status = api.get_volume(volume_id=created.id).status
        assert status == "creating" or time.monotonic() - started >= 0.8, status
        settle(api.get_volume, volume_id=created.id)
        assert time.monotonic() - started >= 0.8
    finally:
        sandbox.world.delays.create = before
    api.delete_volume(volume_id=created.id)
