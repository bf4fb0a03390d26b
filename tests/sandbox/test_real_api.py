"""The sandbox behaves as the real API was recorded doing (issue 13, points 1-12): each test
names its point. Raw HTTP where the wire matters (bodies, headers), the real SDK elsewhere."""
from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from scaleway.block import v1
from scaleway.iam.v1alpha1 import IamV1Alpha1API
from scaleway.instance.v1 import InstanceV1API
from scaleway_core.api import ScalewayException

from engine.sandbox import Delays
from tests.sandbox.helpers import GB, settle

UUID_LEN = 36


def _send(sandbox: Any, method: str, path: str, body: dict[str, Any] | None = None,
          role: str = "full", **params: Any) -> requests.Response:
    return requests.request(method, sandbox.api_url + path, json=body, params=params,
                            headers={"X-Auth-Token": sandbox.keys[role][1]}, timeout=30)


@contextlib.contextmanager
def _slow(sandbox: Any, **delays: float) -> Iterator[None]:
    """Transitions as slow as asked for the test's duration (the session sandbox's are short)."""
    before = {name: getattr(sandbox.world.delays, name) for name in delays}
    for name, value in delays.items():
        setattr(sandbox.world.delays, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(sandbox.world.delays, name, value)


def _volume(api: v1.BlockV1API, name: str, size: int = 5 * GB, **kwargs: Any) -> Any:
    return api.create_volume(name=name, perf_iops=5000,
                             from_empty=v1.CreateVolumeRequestFromEmpty(size=size), **kwargs)


def _s3(sandbox: Any, region: str) -> Any:
    access, secret = sandbox.keys["full"]
    return boto3.client("s3", endpoint_url=sandbox.env["STRONGROOM_S3_ENDPOINT"],
                        aws_access_key_id=access, aws_secret_access_key=secret,
                        region_name=region,
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))


# -- 1 --------------------------------------------------------------------------------------
def test_1_a_429_has_an_empty_body_and_comes_in_streaks(sandbox_faults):
    sandbox = sandbox_faults
    sandbox.faults(rate_429=1.0)
    answers = [_send(sandbox, "GET", "/block/v1/zones/fr-par-1/volumes"),
               _send(sandbox, "POST", "/block/v1/zones/fr-par-1/snapshots",
                     {"volume_id": str(uuid.uuid4()), "name": "x"}),
               _send(sandbox, "GET", f"/block/v1/zones/fr-par-1/snapshots/{uuid.uuid4()}")]
    for answer in answers:
        assert answer.status_code == 429
        assert answer.content == b""
        assert "Content-Type" not in answer.headers and "Retry-After" not in answer.headers
        assert answer.headers["X-Envoy-Ratelimited"] == "true"
    # real-429 mode: once one fires on a route, the next calls of that route are refused too
    sandbox.faults(rate_429=0.2, streak_429=3)
    codes = [_send(sandbox, "GET", "/block/v1/zones/fr-par-2/volumes").status_code
             for _ in range(40)]
    assert 429 in codes and 200 in codes
    runs = "".join("x" if c == 429 else "." for c in codes).strip(".").split(".")
    assert all(len(run) >= 3 for run in runs[:-1] if run), codes


# -- 2 --------------------------------------------------------------------------------------
def test_2_it_mil_1_is_a_block_zone(sandbox, scw_client):
    for path in ("/block/v1/zones/it-mil-1/volumes", "/block/v1/zones/it-mil-1/snapshots",
                 "/block/v1/zones/it-mil-1/volume-types"):
        assert _send(sandbox, "GET", path).status_code == 200, path
    api = v1.BlockV1API(scw_client(zone="it-mil-1"))
    assert {t.zone for t in api.list_volume_types_all()} == {"it-mil-1"}
    volume = settle(api.get_volume, volume_id=_volume(api, "milano").id)
    assert volume.zone == "it-mil-1" and volume.status == "available"
    assert "it-mil" in sandbox.buckets           # a staging bucket in its region
    api.delete_volume(volume_id=volume.id)


# -- 3 --------------------------------------------------------------------------------------
def test_3_a_volume_smaller_than_its_snapshot_is_a_failed_precondition(sandbox, scw_client):
    api = v1.BlockV1API(scw_client())
    volume = settle(api.get_volume, volume_id=_volume(api, "p3", size=10 * GB).id)
    snap = settle(api.get_snapshot, snapshot_id=api.create_snapshot(
        volume_id=volume.id, public=False, name="p3").id)
    answer = _send(sandbox, "POST", "/block/v1/zones/fr-par-1/volumes",
                   {"name": "p3-small", "perf_iops": 5000, "project_id": volume.project_id,
                    "from_snapshot": {"snapshot_id": snap.id, "size": 5 * GB}})
    assert answer.status_code == 412
    body = answer.json()
    assert body.pop("help_message")
    assert body == {"message": "precondition is not respected",
                    "precondition": "resource_not_usable", "type": "precondition_failed"}
    api.delete_snapshot(snapshot_id=snap.id)
    api.delete_volume(volume_id=volume.id)


# -- 4 --------------------------------------------------------------------------------------
def test_4_iops_cannot_change_while_the_volume_is_creating(sandbox, scw_client):
    api = v1.BlockV1API(scw_client())
    with _slow(sandbox, create=3.0):
        volume = _volume(api, "p4")
        answer = _send(sandbox, "PATCH", f"/block/v1/zones/fr-par-1/volumes/{volume.id}",
                       {"perf_iops": 15000})
    assert answer.status_code == 400
    body = answer.json()
    assert body["type"] == "invalid_arguments"
    assert [d["argument_name"] for d in body["details"]] == ["perf_iops"]
    api.delete_volume(volume_id=settle(api.get_volume, volume_id=volume.id).id)


# -- 5 --------------------------------------------------------------------------------------
def test_5_another_organization_s_snapshot_is_denied_and_denials_name_the_object(
        sandbox, scw_client):
    neighbour = next(s for s in sandbox.world.state.coll("snapshots").values()
                     if s["name"] == "neighbour-db")
    api = v1.BlockV1API(scw_client())
    assert neighbour["id"] not in {s.id for s in api.list_snapshots_all(include_deleted=False)}
    answer = _send(sandbox, "GET", f"/block/v1/zones/fr-par-1/snapshots/{neighbour['id']}")
    assert answer.status_code == 403
    assert answer.json() == {"details": [{"action": "read", "resource": "snapshot"}],
                             "message": "insufficient permissions",
                             "type": "permissions_denied"}
    # object types, not products, in every denial
    denied = _send(sandbox, "GET", "/block/v1/zones/fr-par-1/snapshots", role="noblock")
    assert denied.json()["details"] == [{"action": "read", "resource": "snapshot"}]
    denied = _send(sandbox, "GET", "/block/v1/zones/fr-par-1/volumes", role="noblock")
    assert denied.json()["details"] == [{"action": "read", "resource": "volume"}]
    # an unknown access key is a missing access_key
    missing = _send(sandbox, "GET", "/iam/v1alpha1/api-keys/SCWXXXXXXXXXXXXXXXXX")
    assert missing.status_code == 404
    assert missing.json() == {"message": "resource is not found", "resource": "access_key",
                              "resource_id": "SCWXXXXXXXXXXXXXXXXX", "type": "not_found"}


# -- 6 --------------------------------------------------------------------------------------
def _refs(snapshot: Any) -> list[tuple[str, str, str]]:
    return [(str(r.product_resource_type), str(r.type_), str(r.status))
            for r in snapshot.references]


def test_6_snapshots_have_references_and_are_in_use_while_used(sandbox, scw_client):
    api = v1.BlockV1API(scw_client())
    volume = settle(api.get_volume, volume_id=_volume(api, "p6").id)
    with _slow(sandbox, create=2.0):
        snap = api.create_snapshot(volume_id=volume.id, public=False, name="p6")
        assert snap.status == "creating"
        assert _refs(snap) == [("internal", "unknown_type", "attached")]
    snap = settle(api.get_snapshot, snapshot_id=snap.id)
    assert (snap.status, _refs(snap)) == ("available", [])
    with _slow(sandbox, create=2.0):
        clone = api.create_volume(name="p6-clone", perf_iops=5000,
                                  from_snapshot=v1.CreateVolumeRequestFromSnapshot(
                                      snapshot_id=snap.id))
        used = api.get_snapshot(snapshot_id=snap.id)
        assert used.status == "in_use"
        assert [(t, k, s) for t, k, s in _refs(used)] == [("sbs_volume", "link", "attached")]
        with pytest.raises(ScalewayException) as err:
            api.delete_snapshot(snapshot_id=snap.id)
        assert err.value.status_code == 412
    settle(api.get_volume, volume_id=clone.id)
    freed = api.get_snapshot(snapshot_id=snap.id)
    assert (freed.status, _refs(freed)) == ("available", [])
    # the seeded snapshot an Instance image is made of
    seeded = next(s for s in sandbox.world.state.coll("snapshots").values()
                  if s["name"] == "web-01-golden-image")
    image = api.get_snapshot(snapshot_id=seeded["id"])
    assert image.status == "in_use"
    assert _refs(image) == [("instance_image", "link", "attached")]
    api.delete_snapshot(snapshot_id=snap.id)
    for vid in (clone.id, volume.id):
        api.delete_volume(volume_id=vid)


# -- 7 --------------------------------------------------------------------------------------
def test_7_legacy_volumes_through_the_block_api_and_attach_detach(sandbox, scw_client):
    legacy = next(iter(sandbox.world.state.coll("instance_volumes").values()))
    answer = _send(sandbox, "GET", f"/block/v1/zones/fr-par-1/volumes/{legacy['id']}")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["type"], body["specs"]["class"]) == ("b_ssd", "bssd")
    # attach and detach an SBS volume (with the person's key: it may change servers)
    client = scw_client("user")
    block, instance = v1.BlockV1API(client), InstanceV1API(client)
    server = next(iter(sandbox.world.state.coll("servers").values()))
    volume = settle(block.get_volume, volume_id=_volume(
        block, "p7", project_id=server["project"]).id)
    with _slow(sandbox, update=1.5):
        instance.attach_server_volume(server_id=server["id"], volume_id=volume.id,
                                      volume_type="sbs_volume")
        attaching = block.get_volume(volume_id=volume.id)
        assert [(str(r.product_resource_type), str(r.status))
                for r in attaching.references] == [("instance_server", "attaching")]
        attached = _until(block, volume.id, lambda v: v.references[0].status == "attached")
        assert attached.status == "in_use"
        instance.detach_server_volume(server_id=server["id"], volume_id=volume.id)
        detaching = block.get_volume(volume_id=volume.id)
        assert [str(r.status) for r in detaching.references] == ["detaching"]
        detached = _until(block, volume.id, lambda v: not v.references)
    assert detached.status == "available" and detached.last_detached_at is not None
    block.delete_volume(volume_id=volume.id)


def _until(api: v1.BlockV1API, volume_id: str, done: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        volume = api.get_volume(volume_id=volume_id)
        if done(volume):
            return volume
        assert time.monotonic() < deadline, volume
        time.sleep(0.05)


# -- 8 --------------------------------------------------------------------------------------
def test_8_iam_lists_are_filtered_by_the_server_and_users_own_keys(sandbox, scw_client):
    iam = IamV1Alpha1API(scw_client())
    everything = iam.list_policies_all()
    named = iam.list_policies_all(policy_name="strongroom-full")
    assert [p.name for p in named] == ["strongroom-full"] and len(everything) > 1
    tagged = iam.list_policies_all(tag="storage")
    assert tagged and all("storage" in p.tags for p in tagged) and len(tagged) < len(everything)
    assert iam.list_policies_all(editable=False) == []
    keys = iam.list_api_keys_all()
    assert [k.description for k in iam.list_api_keys_all(description="sandbox user")] == \
        ["sandbox user key"]
    assert iam.list_api_keys_all(expired=True) == []
    assert len(iam.list_api_keys_all(expired=False)) == len(keys)
    # a person's key: user_id, no application, and the user itself
    key = iam.get_api_key(access_key=sandbox.keys["user"][0])
    assert key.user_id and not key.application_id
    user = iam.get_user(user_id=key.user_id)
    assert user.organization_id == sandbox.organization_id
    assert [g.name for g in iam.list_groups_all(user_ids=[key.user_id])] == \
        ["storage-operators"]
    own = iam.list_policies_all(user_ids=[key.user_id])
    assert len(own) == 1 and own[0].user_id == key.user_id


# -- 9 --------------------------------------------------------------------------------------
def test_9_every_answer_has_a_request_id_and_the_rate_limit_headers(sandbox_faults):
    sandbox = sandbox_faults
    answers = [_send(sandbox, "GET", "/block/v1/zones/fr-par-1/volumes"),
               _send(sandbox, "GET", f"/block/v1/zones/fr-par-1/volumes/{uuid.uuid4()}"),
               requests.get(f"{sandbox.api_url}/block/v1/zones/fr-par-1/volumes", timeout=30)]
    ids = [a.headers.get("X-Request-Id", "") for a in answers]
    assert [a.status_code for a in answers] == [200, 404, 401]
    assert all(len(i) == UUID_LEN for i in ids) and len(set(ids)) == 3
    sandbox.faults(rate_limit=5, rate_window=30)
    answers = [_send(sandbox, "GET", "/block/v1/zones/nl-ams-1/volumes", role="readonly")
               for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    assert [a.headers["X-Ratelimit-Remaining"] for a in answers] == \
        ["4", "3", "2", "1", "0", "0", "0"]
    assert answers[0].headers["X-Ratelimit-Limit"] == "5, w=30"
    assert 1 <= int(answers[-1].headers["X-Ratelimit-Reset"]) <= 30
    assert answers[-1].content == b"" and answers[-1].headers["X-Request-Id"]


# -- 10 -------------------------------------------------------------------------------------
def test_10_a_realistic_timing_mode_with_durations_by_size():
    real = Delays.realistic_timing(1.0)
    assert real.seconds("volume", 5 * GB) <= 6 and real.seconds("volume", 500 * GB) == 6
    assert real.seconds("snapshot", 50 * GB) == 87
    assert 5 <= real.seconds("export", 1 * GB) < real.seconds("export", 50 * GB) <= 83.5
    assert 108 <= real.seconds("import", 1 * GB) < real.seconds("import", 50 * GB) <= 212.5
    fast = Delays.realistic_timing(0.01)
    assert fast.seconds("import", 50 * GB) == pytest.approx(real.seconds("import", 50 * GB)
                                                             / 100)


def test_10_realistic_timing_in_a_running_sandbox(sandbox, scw_client):
    api = v1.BlockV1API(scw_client())
    small = settle(api.get_volume, volume_id=_volume(api, "p10-small", size=2 * GB).id)
    big = settle(api.get_volume, volume_id=_volume(api, "p10-big", size=40 * GB).id)
    before = sandbox.set_delays(Delays.realistic_timing(0.02))
    try:
        started = time.monotonic()
        snaps = {size: api.create_snapshot(volume_id=vol.id, public=False, name=f"p10-{size}")
                 for size, vol in (("small", small), ("big", big))}
        took = {}
        for size, snap in snaps.items():
            settle(api.get_snapshot, snapshot_id=snap.id)
            took[size] = time.monotonic() - started
        # 0.02 × (8 s + 1.6 s/GB): about 0.22 s and 1.44 s
        assert 0.2 <= took["small"] < took["big"] and took["big"] >= 1.4
    finally:
        sandbox.set_delays(before)
    for snap in snaps.values():
        api.delete_snapshot(snapshot_id=snap.id)
    for vol in (small, big):
        api.delete_volume(volume_id=vol.id)


# -- 11 -------------------------------------------------------------------------------------
def test_11_exports_refuse_sse_kms_buckets_and_snapshots_over_1_tb(sandbox, scw_client,
                                                                    tmp_path):
    api = v1.BlockV1API(scw_client(zone="pl-waw-1"))
    volume = settle(api.get_volume, volume_id=_volume(api, "p11").id)
    snap = settle(api.get_snapshot, snapshot_id=api.create_snapshot(
        volume_id=volume.id, public=False, name="p11").id)
    bucket = sandbox.buckets["pl-waw"]
    s3 = _s3(sandbox, "pl-waw")
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                "KMSMasterKeyID": str(uuid.uuid4())}}]})
    try:
        with pytest.raises(ScalewayException) as err:
            api.export_snapshot_to_object_storage(snapshot_id=snap.id, bucket=bucket,
                                                  key="p11.qcow2")
        assert err.value.status_code == 400
        assert err.value.response.json()["details"][0]["argument_name"] == "bucket"
    finally:
        s3.delete_bucket_encryption(Bucket=bucket)
    assert api.get_snapshot(snapshot_id=snap.id).status == "available"
    # over 1 TB: refused at once too
    huge = settle(api.get_volume, volume_id=_volume(api, "p11-huge", size=2000 * GB).id)
    huge_snap = settle(api.get_snapshot, snapshot_id=api.create_snapshot(
        volume_id=huge.id, public=False, name="p11-huge").id)
    with pytest.raises(ScalewayException) as err:
        api.export_snapshot_to_object_storage(snapshot_id=huge_snap.id, bucket=bucket,
                                              key="p11-huge.qcow2")
    assert err.value.status_code == 400
    # imports refuse a QCOW2 with a backing file
    image = tmp_path / "child.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-u", "-f", "qcow2", "-b", "/nonexistent.raw",
                    "-F", "raw", str(image), "1G"], check=True)
    s3.upload_file(str(image), bucket, "p11-child.qcow2")
    with pytest.raises(ScalewayException) as err:
        api.import_snapshot_from_object_storage(bucket=bucket, key="p11-child.qcow2",
                                                name="p11-child", project_id=volume.project_id)
    assert err.value.status_code == 400 and "backing file" in err.value.response.text
    s3.delete_object(Bucket=bucket, Key="p11-child.qcow2")
    for sid in (snap.id, huge_snap.id):
        api.delete_snapshot(snapshot_id=sid)
    for vid in (volume.id, huge.id):
        api.delete_volume(volume_id=vid)


# -- 12 -------------------------------------------------------------------------------------
def test_12_kms_key_id_is_kept_and_passed_on(sandbox, scw_client):
    api = v1.BlockV1API(scw_client())
    key = str(uuid.uuid4())
    volume = settle(api.get_volume, volume_id=_volume(api, "p12", kms_key_id=key).id)
    assert volume.kms_key_id == key
    snap = settle(api.get_snapshot, snapshot_id=api.create_snapshot(
        volume_id=volume.id, public=False, name="p12").id)
    assert snap.kms_key_id == key
    clone = settle(api.get_volume, volume_id=api.create_volume(
        name="p12-clone", perf_iops=5000,
        from_snapshot=v1.CreateVolumeRequestFromSnapshot(snapshot_id=snap.id)).id)
    assert clone.kms_key_id == key
    vault = next(v for v in sandbox.world.state.coll("volumes").values()
                 if v["name"] == "vault-secrets")
    assert len(vault["kms_key_id"] or "") == UUID_LEN
    bad = _send(sandbox, "POST", "/block/v1/zones/fr-par-1/volumes",
                {"name": "p12-bad", "perf_iops": 5000, "project_id": volume.project_id,
                 "kms_key_id": "not-a-key", "from_empty": {"size": 5 * GB}})
    assert bad.status_code == 400
    api.delete_snapshot(snapshot_id=snap.id)
    for vid in (clone.id, volume.id):
        api.delete_volume(volume_id=vid)
