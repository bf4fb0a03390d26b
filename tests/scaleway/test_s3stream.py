"""The S3 streams against a real S3 server process (moto's), through boto3."""
from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from typing import Any

import pytest

from engine.scaleway.s3stream import (MAX_PARTS, MIN_PART, Cancelled, MultipartWriter,
                                      RangedReader, StreamReader, part_size_for)
from tests.scaleway.retries import RecordingPolicy

MiB = 1024 * 1024


def test_part_size_keeps_uploads_within_1000_parts() -> None:
    assert part_size_for(0) == MIN_PART
    assert part_size_for(5 * 1024 ** 3) == MIN_PART
    big = 5 * 1024 ** 4
    assert part_size_for(big) * MAX_PARTS >= big
    assert part_size_for(big) == -(-big // MAX_PARTS)


@pytest.mark.parametrize("size", [0, 1, 3 * MiB + 17, 8 * MiB])
def test_ranged_reader_returns_the_object_in_order(moto_client: Any, moto_bucket: str,
                                                   size: int) -> None:
    data = os.urandom(size)
    moto_client.put_object(Bucket=moto_bucket, Key="obj", Body=data)
    eof = threading.Event()
    reader = RangedReader(moto_client, moto_bucket, "obj", size, part_size=1 * MiB,
                          concurrency=3, on_eof=eof.set)
    with reader:
        out = reader.read()
    assert out == data
    assert eof.is_set()
    assert reader._allocated <= 6  # a bounded window of reused buffers


def test_ranged_reader_feeds_a_buffered_consumer(moto_client: Any, moto_bucket: str) -> None:
    data = os.urandom(5 * MiB + 3)
    moto_client.put_object(Bucket=moto_bucket, Key="obj", Body=data)
    reader = RangedReader(moto_client, moto_bucket, "obj", len(data), part_size=1 * MiB,
                          concurrency=4)
    digest = hashlib.sha256()
    buf = bytearray(300_001)
    while n := reader.readinto(buf):
        digest.update(memoryview(buf)[:n])
    reader.close()
    assert digest.digest() == hashlib.sha256(data).digest()


def test_ranged_reader_fails_clearly_when_the_object_is_missing(moto_client: Any,
                                                                moto_bucket: str) -> None:
    reader = RangedReader(moto_client, moto_bucket, "nope", 10, part_size=1 * MiB, concurrency=2)
    with pytest.raises(Exception, match="nope"):
        reader.read()
    reader.close()


def test_ranged_reader_stops_when_cancelled(moto_client: Any, moto_bucket: str) -> None:
    moto_client.put_object(Bucket=moto_bucket, Key="obj", Body=b"x" * (3 * MiB))
    cancel = threading.Event()
    reader = RangedReader(moto_client, moto_bucket, "obj", 3 * MiB, part_size=1 * MiB,
                          concurrency=2, cancel=cancel)
    assert reader.read(10) == b"xxxxxxxxxx"
    cancel.set()
    with pytest.raises(Cancelled):
        reader.read(10)
    reader.close()


@pytest.mark.parametrize("size", [0, 5, 8 * MiB, 8 * MiB * 2 + 12345])
def test_multipart_writer_makes_the_object(moto_client: Any, moto_bucket: str, size: int) -> None:
    data = os.urandom(size)
    writer = MultipartWriter(moto_client, moto_bucket, "up", size, concurrency=2)
    src = memoryview(data)
    for i in range(0, size, 1_000_003):
        writer.write(src[i:i + 1_000_003])
    writer.commit()
    writer.close()
    got = moto_client.get_object(Bucket=moto_bucket, Key="up")["Body"].read()
    assert got == data


def test_multipart_writer_works_as_a_copy_target(moto_client: Any, moto_bucket: str) -> None:
    import io

    data = os.urandom(9 * MiB)
    writer = MultipartWriter(moto_client, moto_bucket, "copy", len(data))
    shutil.copyfileobj(io.BytesIO(data), writer)
    writer.commit()
    assert moto_client.head_object(Bucket=moto_bucket, Key="copy")["ContentLength"] == len(data)


def test_multipart_writer_abort_leaves_nothing(moto_client: Any, moto_bucket: str) -> None:
    writer = MultipartWriter(moto_client, moto_bucket, "gone", 20 * MiB)
    writer.write(os.urandom(9 * MiB))
    writer.close()  # no commit: aborted
    assert "Contents" not in moto_client.list_objects_v2(Bucket=moto_bucket)
    uploads = moto_client.list_multipart_uploads(Bucket=moto_bucket).get("Uploads", [])
    assert uploads == []


@pytest.mark.parametrize("finish", ["commit", "abort"])
def test_multipart_writer_aborts_a_start_whose_answer_was_lost(moto_client: Any,
                                                               moto_bucket: str,
                                                               finish: str) -> None:
    """A dropped connection after S3 made the upload: the client's retry starts a second one.
    The first is the writer's own (its key is one job's) and must not stay behind."""
    stray = moto_client.create_multipart_upload(Bucket=moto_bucket, Key="lost")["UploadId"]
    other = moto_client.create_multipart_upload(Bucket=moto_bucket, Key="lost-not")["UploadId"]
    writer = MultipartWriter(moto_client, moto_bucket, "lost", 2 * MiB)
    writer.write(os.urandom(2 * MiB))
    writer.commit() if finish == "commit" else writer.abort()
    uploads = moto_client.list_multipart_uploads(Bucket=moto_bucket).get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [other]  # another key's upload is not ours
    assert stray not in {u["UploadId"] for u in uploads}


class _CuttingClient:
    """Passes calls to a real boto3 client; cuts the first ``cuts`` bodies after 1000 bytes
    (what a dropped connection looks like to the reader)."""

    def __init__(self, real: Any, cuts: int) -> None:
        self.real, self.cuts, self.calls = real, cuts, 0

    def get_object(self, **kwargs: Any) -> Any:
        self.calls += 1
        resp = self.real.get_object(**kwargs)
        if self.cuts > 0:
            self.cuts -= 1
            resp["Body"] = _CutBody(resp["Body"])
        return resp


class _CutBody:
    def __init__(self, body: Any) -> None:
        self.body, self.sent = body, 0

    def read(self, n: int) -> bytes:
        if self.sent >= 1000:
            raise ConnectionResetError("cut")
        data = self.body.read(min(n, 1000 - self.sent))
        self.sent += len(data)
        return data

    def close(self) -> None:
        self.body.close()


@pytest.mark.parametrize("kind", ["ranged", "stream"])
def test_readers_resume_after_cut_connections(moto_client: Any, moto_bucket: str,
                                              kind: str) -> None:
    data = os.urandom(3 * MiB + 5)
    moto_client.put_object(Bucket=moto_bucket, Key="obj", Body=data)
    cutting = _CuttingClient(moto_client, cuts=2)
    reader = (RangedReader(cutting, moto_bucket, "obj", len(data), part_size=1 * MiB,
                           concurrency=2) if kind == "ranged"
              else StreamReader(cutting, moto_bucket, "obj", len(data)))
    with reader:
        assert reader.read() == data
    assert reader.retries == 2 and cutting.calls >= 3


class _TimedCuttingClient(_CuttingClient):
    """A _CuttingClient that remembers when each GET was sent."""

    def __init__(self, real: Any, cuts: int) -> None:
        super().__init__(real, cuts)
        self.sent: list[float] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.sent.append(time.monotonic())
        return super().get_object(**kwargs)


@pytest.mark.parametrize("kind", ["ranged", "stream"])
def test_readers_wait_a_jittered_delay_before_asking_again(moto_client: Any, moto_bucket: str,
                                                           kind: str) -> None:
    data = os.urandom(2 * MiB + 5)
    moto_client.put_object(Bucket=moto_bucket, Key="obj", Body=data)
    cutting = _TimedCuttingClient(moto_client, cuts=3)
    policy = RecordingPolicy(attempts=6, base=0.05, cap=0.2)
    # one GET at a time, so the calls after each cut follow one another
    reader = (RangedReader(cutting, moto_bucket, "obj", len(data), part_size=1 * MiB,
                           concurrency=1, retry=policy) if kind == "ranged"
              else StreamReader(cutting, moto_bucket, "obj", len(data), retry=policy))
    with reader:
        assert reader.read() == data
    # Each of the three cuts waited one of the policy's delays: jittered (all different) and
    # not zero (they used to ask again at once)...
    assert reader.retries == 3 and len(policy.chosen) == 3
    assert all(d > 0 for d in policy.chosen) and len(set(policy.chosen)) == 3
    # ...really waited before the next GET.
    gaps = [b - a for a, b in zip(cutting.sent, cutting.sent[1:])][:3]
    assert all(gap >= 0.9 * d for gap, d in zip(gaps, policy.chosen)), (gaps, policy.chosen)


def test_a_reader_waiting_to_retry_stops_when_cancelled(moto_client: Any,
                                                        moto_bucket: str) -> None:
    moto_client.put_object(Bucket=moto_bucket, Key="obj", Body=os.urandom(3000))
    cancel = threading.Event()
    slow = RecordingPolicy(attempts=3, base=30.0, cap=30.0, floor=30.0)
    reader = StreamReader(_CuttingClient(moto_client, cuts=1), moto_bucket, "obj", 3000,
                          cancel=cancel, retry=slow)
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        reader.read()
    assert slow.chosen == [30.0] and time.monotonic() - started < 5  # cut short, not 30 s
    reader.close()
