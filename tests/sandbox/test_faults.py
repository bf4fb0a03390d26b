"""Fault injection at run time: latency, 429 and 503 answers, failed exports, S3 connections
dropped mid-body; through Sandbox.faults() and the admin endpoint."""
from __future__ import annotations

import time
import uuid

import boto3
import pytest
import requests
from botocore.config import Config
from scaleway.block import v1
from scaleway_core.api import ScalewayException

from tests.sandbox.helpers import GB, settle


def test_admin_endpoint_reads_and_changes_faults(sandbox_faults):
    url = f"{sandbox_faults.api_url}/_sandbox/faults"
    assert requests.get(url, timeout=30).json()["latency_ms"] == 0
    answer = requests.post(url, json={"latency_ms": 150}, timeout=30)
    assert answer.status_code == 200 and answer.json()["latency_ms"] == 150
    bad = requests.post(url, json={"latency": 1}, timeout=30)
    assert bad.status_code == 400 and "unknown fault" in bad.json()["message"]
    bad = requests.post(url, json={"rate_429": 2}, timeout=30)
    assert bad.status_code == 400


def test_latency(sandbox_faults, scw_client):
    api = v1.BlockV1API(scw_client())
    sandbox_faults.faults(latency_ms=300)
    started = time.monotonic()
    api.list_volume_types(zone="fr-par-1")
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("fault,code", [("rate_429", 429), ("rate_503", 503)])
def test_error_rates(sandbox_faults, scw_client, fault, code):
    sandbox_faults.faults(**{fault: 1.0})
    access, secret = sandbox_faults.keys["full"]
    answer = requests.get(f"{sandbox_faults.api_url}/block/v1/zones/fr-par-1/volumes",
                          headers={"X-Auth-Token": secret}, timeout=30)
    assert answer.status_code == code
    if code == 429:   # the real gateway's: no body (tests/sandbox/test_real_api.py)
        assert answer.content == b"" and "Retry-After" not in answer.headers
    else:
        assert answer.json()["type"] == "service_unavailable"
    sandbox_faults.faults(**{fault: 0.5})
    codes = {_status(sandbox_faults) for _ in range(40)}
    assert codes == {200, code}


def _status(sandbox) -> int:
    access, secret = sandbox.keys["full"]
    return requests.get(f"{sandbox.api_url}/block/v1/zones/fr-par-1/volume-types",
                        headers={"X-Auth-Token": secret}, timeout=30).status_code


def test_failed_export_leaves_no_object(sandbox_faults, scw_client):
    api = v1.BlockV1API(scw_client())
    volume = settle(api.get_volume, volume_id=api.create_volume(
        name="fault-export", perf_iops=5000,
        from_empty=v1.CreateVolumeRequestFromEmpty(size=5 * GB)).id)
    snap = settle(api.get_snapshot, snapshot_id=api.create_snapshot(
        volume_id=volume.id, public=False, name="fault-export").id)
    sandbox_faults.faults(fail_export=True)
    bucket, key = sandbox_faults.buckets["fr-par"], f"fail/{uuid.uuid4().hex}.qcow2"
    answer = api.export_snapshot_to_object_storage(snapshot_id=snap.id, bucket=bucket, key=key)
    assert answer.status == "exporting"
    assert settle(api.get_snapshot, snapshot_id=snap.id).status == "available"
    listing = _s3(sandbox_faults).list_objects_v2(Bucket=bucket, Prefix="fail/")
    assert listing.get("KeyCount", 0) == 0
    api.delete_snapshot(snapshot_id=snap.id)
    api.delete_volume(volume_id=volume.id)


def _s3(sandbox, retries: int = 1):
    access, secret = sandbox.keys["full"]
    return boto3.client("s3", endpoint_url=sandbox.env["STRONGROOM_S3_ENDPOINT"],
                        aws_access_key_id=access, aws_secret_access_key=secret,
                        region_name="fr-par",
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": retries}))


def test_s3_connection_dropped_mid_body(sandbox_faults):
    client = _s3(sandbox_faults)
    bucket, key = sandbox_faults.buckets["fr-par"], "drop/object.bin"
    payload = bytes(range(256)) * 4096          # 1 MiB
    client.put_object(Bucket=bucket, Key=key, Body=payload)
    sandbox_faults.faults(drop_s3=1)
    with pytest.raises(Exception) as err:
        client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert "IncompleteRead" in repr(err.value) or "Connection" in repr(err.value) \
        or "ResponseStreamingError" in repr(err.value)
    # the next read is whole again
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == payload
    client.delete_object(Bucket=bucket, Key=key)


def test_fail_after_create_does_the_work_then_answers_503(sandbox_faults, scw_client):
    api = v1.BlockV1API(scw_client())
    name = f"fault-after-create-{uuid.uuid4().hex[:8]}"
    sandbox_faults.faults(fail_after_create=1)
    with pytest.raises(ScalewayException) as err:
        api.create_volume(name=name, perf_iops=5000,
                          from_empty=v1.CreateVolumeRequestFromEmpty(size=5 * GB))
    assert err.value.status_code == 503
    assert err.value.response.json()["type"] == "service_unavailable"
    # ...yet the volume was made, once; reads are not affected by the fault.
    made = [v for v in api.list_volumes_all(include_deleted=False) if v.name == name]
    assert len(made) == 1
    # A refused creation does not use the fault up; the next good one answers normally again.
    sandbox_faults.faults(fail_after_create=1)
    with pytest.raises(ScalewayException) as err:
        api.create_volume(name=name, perf_iops=4321,
                          from_empty=v1.CreateVolumeRequestFromEmpty(size=5 * GB))
    assert err.value.status_code == 400
    with pytest.raises(ScalewayException) as err:
        api.create_snapshot(volume_id=settle(api.get_volume, volume_id=made[0].id).id,
                            public=False, name=name)
    assert err.value.status_code == 503
    snap = next(s for s in api.list_snapshots_all(include_deleted=False) if s.name == name)
    again = api.create_snapshot(volume_id=made[0].id, public=False, name=name + "-2")
    assert again.status == "creating"
    assert requests.get(f"{sandbox_faults.api_url}/_sandbox/faults",
                        timeout=30).json()["fail_after_create"] == 0
    for snapshot_id in (snap.id, again.id):
        settle(api.get_snapshot, snapshot_id=snapshot_id)
        api.delete_snapshot(snapshot_id=snapshot_id)
    api.delete_volume(volume_id=made[0].id)


def test_fail_updates_answers_every_patch_503_and_changes_nothing(sandbox_faults, scw_client):
    api = v1.BlockV1API(scw_client())
    volume = settle(api.get_volume, volume_id=api.create_volume(
        name="fault-update", perf_iops=5000, tags=["before"],
        from_empty=v1.CreateVolumeRequestFromEmpty(size=5 * GB)).id)
    sandbox_faults.faults(fail_updates=True)
    with pytest.raises(ScalewayException) as err:
        api.update_volume(volume_id=volume.id, tags=["after"])
    assert err.value.status_code == 503
    assert err.value.response.json()["type"] == "service_unavailable"
    # reads still answer, and the update was not carried out
    assert api.get_volume(volume_id=volume.id).tags == ["before"]
    sandbox_faults.faults()
    assert requests.get(f"{sandbox_faults.api_url}/_sandbox/faults",
                        timeout=30).json()["fail_updates"] is False
    assert api.update_volume(volume_id=volume.id, tags=["after"]).tags == ["after"]
    api.delete_volume(volume_id=volume.id)
