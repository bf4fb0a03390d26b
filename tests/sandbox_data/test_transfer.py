"""Export streams a QCOW2 into a bucket; import brings it back as a sparse raw file, through the
real moto server."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.sandbox import qcow2
from engine.sandbox.s3 import S3Server
from engine.sandbox.transfer import (
    MIN_PART_SIZE, ObjectMissing, export_volume_to_bucket, import_object_to_volume, part_size_for,
)
from tests.sandbox_data.conftest import GiB, MiB, make_sparse, qemu_img, qemu_info, same_content

BUCKET = "strongroom-staging-fr-par"


def test_round_trip_single_part(s3_server: S3Server, sparse_raw: Path, tmp_path: Path):
    client = s3_server.client()
    size = sparse_raw.stat().st_size
    length = export_volume_to_bucket(sparse_raw, size, client, BUCKET, "rt/single.qcow2")
    head = client.head_object(Bucket=BUCKET, Key="rt/single.qcow2")
    assert head["ContentLength"] == length
    # the object is a QCOW2 image qemu accepts, of the volume's size
    client.download_file(BUCKET, "rt/single.qcow2", str(tmp_path / "got.qcow2"))
    assert qemu_img("check", str(tmp_path / "got.qcow2")).returncode == 0
    assert qemu_info(tmp_path / "got.qcow2")["virtual-size"] == size
    back = tmp_path / "back.raw"
    assert import_object_to_volume(client, BUCKET, "rt/single.qcow2", back) == size
    assert same_content(sparse_raw, back)
    assert not list(tmp_path.glob("*.qcow2-download"))


def test_round_trip_multipart(s3_server: S3Server, tmp_path: Path):
    size = 5 * GiB
    pieces = {n * 397 * MiB + n * 4096: os.urandom(2 * MiB + 17) for n in range(10)}
    raw = make_sparse(tmp_path / "big.raw", size, pieces)
    client = s3_server.client("nl-ams")
    progress: list[tuple[int, int]] = []
    length = export_volume_to_bucket(raw, size, client, "strongroom-staging-nl-ams", "rt/multi.qcow2",
                                     progress=lambda done, total: progress.append((done, total)))
    assert length > MIN_PART_SIZE
    etag = client.head_object(Bucket="strongroom-staging-nl-ams", Key="rt/multi.qcow2")["ETag"]
    assert etag.strip('"').endswith(f"-{len(progress)}") and len(progress) >= 2
    assert progress[-1] == (length, length)
    back = tmp_path / "back.raw"
    assert import_object_to_volume(client, "strongroom-staging-nl-ams", "rt/multi.qcow2", back) == size
    assert same_content(raw, back)


def test_part_size_respects_the_1000_part_limit():
    assert part_size_for(10 * MiB) == MIN_PART_SIZE
    big = 20 * 1024 * GiB
    assert part_size_for(big) * 1000 >= big
    assert part_size_for(big) % qcow2.CLUSTER_SIZE == 0


def test_import_refuses_backing_file_object(s3_server: S3Server, tmp_path: Path):
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    assert qemu_img("create", "-f", "qcow2", str(base), "1G").returncode == 0
    assert qemu_img("create", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(top)).returncode == 0
    client = s3_server.client()
    client.upload_file(str(top), BUCKET, "bad/top.qcow2")
    with pytest.raises(qcow2.ImageRefused) as refused:
        import_object_to_volume(client, BUCKET, "bad/top.qcow2", tmp_path / "out.raw")
    assert refused.value.status == 400 and refused.value.body["type"] == "invalid_arguments"
    assert not (tmp_path / "out.raw").exists()


@pytest.mark.parametrize("body", [b"", b"<html>not an image</html>"], ids=["empty", "html"])
def test_import_refuses_non_qcow2_object(s3_server: S3Server, tmp_path: Path, body: bytes):
    client = s3_server.client()
    client.put_object(Bucket=BUCKET, Key="bad/not", Body=body)
    with pytest.raises(qcow2.ImageRefused, match="not a QCOW2"):
        import_object_to_volume(client, BUCKET, "bad/not", tmp_path / "out.raw")


def test_import_of_missing_object_is_not_found(s3_server: S3Server, tmp_path: Path):
    with pytest.raises(ObjectMissing) as missing:
        import_object_to_volume(s3_server.client(), BUCKET, "nothing/here", tmp_path / "out.raw")
    assert missing.value.status == 404 and missing.value.body["type"] == "not_found"


def test_import_survives_a_dropped_connection(s3_server: S3Server, sparse_raw: Path, tmp_path: Path):
    client = s3_server.client()
    size = sparse_raw.stat().st_size
    export_volume_to_bucket(sparse_raw, size, client, BUCKET, "rt/drop.qcow2")
    before = s3_server.proxy.stats.dropped
    # the 64 KiB header probe is shorter than the cut point: only the download is cut, and retried
    s3_server.proxy.set_drop(count=1, after_bytes=200_000)
    try:
        assert import_object_to_volume(client, BUCKET, "rt/drop.qcow2", tmp_path / "back.raw") == size
    finally:
        s3_server.proxy.set_drop()
    assert s3_server.proxy.stats.dropped == before + 1
    assert same_content(sparse_raw, tmp_path / "back.raw")
