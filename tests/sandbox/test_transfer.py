"""Export to and import from Object Storage through the real SDK and boto3: real QCOW2 images
in moto's S3 server, region rules, refused images, and the full round trip."""
from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from scaleway.block import v1
from scaleway_core.api import ScalewayException

from tests.sandbox.helpers import GB, settle

MARKS = {0: b"boot sector", 7 * 65536 + 5: b"middle of a cluster", 3 * GB + 12345: b"far away"}


def s3(sandbox, region: str = "fr-par", role: str = "full"):
    access, secret = sandbox.keys[role]
    return boto3.client("s3", endpoint_url=sandbox.env["STRONGROOM_S3_ENDPOINT"],
                        aws_access_key_id=access, aws_secret_access_key=secret,
                        region_name=region, config=Config(s3={"addressing_style": "path"}))


def _volume_with_marks(api, sandbox, size: int = 5 * GB):
    volume = settle(api.get_volume, volume_id=api.create_volume(
        name=f"xfer-{uuid.uuid4().hex[:6]}", perf_iops=5000,
        from_empty=v1.CreateVolumeRequestFromEmpty(size=size)).id)
    with open(sandbox.volume_path(volume.id), "r+b") as f:
        for offset, data in MARKS.items():
            f.seek(offset)
            f.write(data)
    return volume


def _snapshot(api, volume_id: str):
    return settle(api.get_snapshot, snapshot_id=api.create_snapshot(
        volume_id=volume_id, public=False, name="xfer-snap").id)


def _export(api, snapshot_id: str, bucket: str, key: str) -> list[str]:
    """Export and return the statuses seen until the snapshot is available again."""
    answer = api.export_snapshot_to_object_storage(snapshot_id=snapshot_id, bucket=bucket,
                                                   key=key)
    seen = [answer.status]
    snap = settle(api.get_snapshot, snapshot_id=snapshot_id)
    seen.append(snap.status)
    return seen


def _qemu_info(path: Path) -> dict:
    subprocess.run(["qemu-img", "check", "-f", "qcow2", str(path)], check=True,
                   capture_output=True)
    out = subprocess.run(["qemu-img", "info", "--output=json", "-f", "qcow2", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_round_trip_keeps_content(scw_client, sandbox, tmp_path):
    api = v1.BlockV1API(scw_client())
    bucket = sandbox.buckets["fr-par"]
    client = s3(sandbox)
    volume = _volume_with_marks(api, sandbox)
    snap = _snapshot(api, volume.id)
    assert _export(api, snap.id, bucket, "rt/first.qcow2") == ["exporting", "available"]
    first = tmp_path / "first.qcow2"
    client.download_file(bucket, "rt/first.qcow2", str(first))
    assert _qemu_info(first)["virtual-size"] == 5 * GB

    imported = api.import_snapshot_from_object_storage(
        bucket=bucket, key="rt/first.qcow2", name="xfer-imported")
    assert imported.status == "creating" and imported.parent_volume is None
    imported = settle(api.get_snapshot, snapshot_id=imported.id)
    assert imported.status == "available" and imported.size == 5 * GB
    restored = settle(api.get_volume, volume_id=api.create_volume(
        name="xfer-restored", perf_iops=15000, from_snapshot=v1.CreateVolumeRequestFromSnapshot(
            snapshot_id=imported.id, size=10 * GB)).id)
    assert restored.type_ == "sbs_15k" and restored.size == 10 * GB
    with open(sandbox.volume_path(restored.id), "rb") as f:
        for offset, data in MARKS.items():
            f.seek(offset)
            assert f.read(len(data)) == data

    again = _snapshot(api, restored.id)
    _export(api, again.id, bucket, "rt/second.qcow2")
    second = tmp_path / "second.qcow2"
    client.download_file(bucket, "rt/second.qcow2", str(second))
    assert _qemu_info(second)["virtual-size"] == 10 * GB
    # identical content: the grown tail reads as zeros
    subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(first),
                    str(second)], check=True, capture_output=True)
    for key in ("rt/first.qcow2", "rt/second.qcow2"):
        client.delete_object(Bucket=bucket, Key=key)
    for snapshot_id in (snap.id, imported.id, again.id):
        api.delete_snapshot(snapshot_id=snapshot_id)
    for volume_id in (volume.id, restored.id):
        api.delete_volume(volume_id=volume_id)


def _error(call, **kwargs) -> tuple[int, dict]:
    with pytest.raises(ScalewayException) as err:
        call(**kwargs)
    return err.value.status_code, err.value.response.json()


def test_bucket_of_another_region_is_refused(scw_client, sandbox):
    api = v1.BlockV1API(scw_client())
    volume = _volume_with_marks(api, sandbox)
    snap = _snapshot(api, volume.id)
    status, body = _error(api.export_snapshot_to_object_storage, snapshot_id=snap.id,
                          bucket=sandbox.buckets["nl-ams"], key="x.qcow2")
    assert status == 400 and body["type"] == "invalid_arguments"
    assert body["details"][0]["argument_name"] == "bucket"
    status, body = _error(api.import_snapshot_from_object_storage,
                          bucket=sandbox.buckets["pl-waw"], key="x.qcow2", name="n")
    assert status == 400 and body["type"] == "invalid_arguments"
    status, body = _error(api.export_snapshot_to_object_storage, snapshot_id=snap.id,
                          bucket="no-such-bucket", key="x.qcow2")
    assert status == 404 and body["type"] == "not_found"
    api.delete_snapshot(snapshot_id=snap.id)
    api.delete_volume(volume_id=volume.id)


def test_import_refuses_what_the_real_api_refuses(scw_client, sandbox, tmp_path):
    api = v1.BlockV1API(scw_client())
    bucket = sandbox.buckets["fr-par"]
    client = s3(sandbox)
    status, body = _error(api.import_snapshot_from_object_storage, bucket=bucket,
                          key="missing.qcow2", name="n")
    assert status == 404 and body["type"] == "not_found"
    client.put_object(Bucket=bucket, Key="refuse/raw.img", Body=b"\0" * 70000)
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "1G"], check=True)
    child = tmp_path / "child.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2",
                    str(child)], check=True)
    client.upload_file(str(child), bucket, "refuse/backing.qcow2")
    for key in ("refuse/raw.img", "refuse/backing.qcow2"):
        status, body = _error(api.import_snapshot_from_object_storage, bucket=bucket, key=key,
                              name="refused")
        assert status == 400 and body["type"] == "invalid_arguments", key
        assert body["details"][0]["help_message"]
        client.delete_object(Bucket=bucket, Key=key)
    assert not [s for s in api.list_snapshots_all(include_deleted=False)
                if s.name == "refused"]


def test_export_of_a_seeded_ext4_volume_matches_its_bytes(scw_client, sandbox, tmp_path):
    api = v1.BlockV1API(scw_client(zone="fr-par-2"))
    volume = next(v for v in api.list_volumes_all(include_deleted=False)
                  if v.name == "dev-scratch")
    snap = _snapshot(api, volume.id)
    assert _export(api, snap.id, sandbox.buckets["fr-par"], "seeded/dev.qcow2")[-1] == \
        "available"
    image = tmp_path / "dev.qcow2"
    s3(sandbox).download_file(sandbox.buckets["fr-par"], "seeded/dev.qcow2", str(image))
    assert _qemu_info(image)["virtual-size"] == volume.size
    subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(image),
                    str(sandbox.volume_path(volume.id))], check=True, capture_output=True)
    s3(sandbox).delete_object(Bucket=sandbox.buckets["fr-par"], Key="seeded/dev.qcow2")
    api.delete_snapshot(snapshot_id=snap.id)


def test_import_of_a_damaged_image_ends_in_error(scw_client, sandbox, tmp_path):
    from engine.sandbox.qcow2 import write_qcow2

    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(GB)
        f.seek(10 * 65536)
        f.write(b"x" * 300_000)
    image = tmp_path / "disk.qcow2"
    write_qcow2(raw, image)
    cut = image.read_bytes()[: 3 * 65536 + 100]     # header intact, tables and data cut off
    bucket = sandbox.buckets["fr-par"]
    s3(sandbox).put_object(Bucket=bucket, Key="damaged.qcow2", Body=cut)
    api = v1.BlockV1API(scw_client())
    snap = api.import_snapshot_from_object_storage(bucket=bucket, key="damaged.qcow2",
                                                   name="damaged")
    assert snap.status == "creating" and snap.size == GB
    assert settle(api.get_snapshot, snapshot_id=snap.id).status == "error"
    api.delete_snapshot(snapshot_id=snap.id)
    s3(sandbox).delete_object(Bucket=bucket, Key="damaged.qcow2")
