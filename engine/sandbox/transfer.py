"""Moving volume contents between the sandbox's sparse files and its S3 buckets, as QCOW2.

`export_volume_to_bucket` is what the sandbox's export action does: it streams the volume's QCOW2
image into the bucket as a multipart upload, one part in memory at a time. `import_object_to_volume`
is the import action: it checks the object's header with a ranged GET (refusing early, like the
real API), downloads the image next to the destination, converts it to a sparse raw file and
deletes the download. Errors the API would answer are `ApiError`s (`.status`, `.body`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from engine.sandbox.qcow2 import CLUSTER_SIZE, ApiError, iter_qcow2, parse_header, read_qcow2

MIN_PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 1000  # Scaleway's limit on parts per multipart upload


class ObjectMissing(ApiError):
    """The bucket or the object to import does not exist."""

    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(
            f"object {key!r} not found in bucket {bucket!r}",
            404,
            {
                "message": "resource is not found",
                "resource": "object",
                "resource_id": f"{bucket}/{key}",
                "type": "not_found",
            },
        )


def part_size_for(image_size: int) -> int:
    """max(8 MiB, ceil(size / 1000)), rounded up to whole clusters."""
    size = max(MIN_PART_SIZE, -(-image_size // MAX_PARTS))
    return -(-size // CLUSTER_SIZE) * CLUSTER_SIZE


def export_volume_to_bucket(
    volume_file: str | os.PathLike,
    size: int,
    s3: Any,
    bucket: str,
    key: str,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write the QCOW2 image of `volume_file` (virtual size `size`) to `bucket/key`.

    `s3` is a boto3 S3 client. Returns the image's length. `progress(done, total)` after each part.
    A failed upload is aborted, leaving no object and no pending parts.
    """
    plan, chunks = iter_qcow2(volume_file, size)
    try:
        return _upload(plan.image_size, chunks, s3, bucket, key, progress)
    finally:
        chunks.close()  # closes the volume file even when the upload stopped half-way


def _upload(total: int, chunks: Generator[bytes, None, None], s3: Any, bucket: str, key: str,
            progress: Callable[[int, int], None] | None) -> int:
    part_size = part_size_for(total)
    buf = bytearray(part_size)
    if total <= part_size:
        filled = _fill(chunks, buf)
        s3.put_object(Bucket=bucket, Key=key, Body=bytes(buf[:filled]))
        if progress:
            progress(filled, total)
        return total
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    try:
        parts, done = [], 0
        while filled := _fill(chunks, buf):
            number = len(parts) + 1
            answer = s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                Body=bytes(buf[:filled]),
            )
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            done += filled
            if progress:
                progress(done, total)
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError:
            pass
        raise
    return total


def _fill(chunks: Generator[bytes, None, None], buf: bytearray) -> int:
    """Fill `buf` from the cluster iterator (clusters divide the part size); return bytes filled."""
    filled = 0
    view = memoryview(buf)
    while filled < len(buf):
        chunk = next(chunks, None)
        if chunk is None:
            break
        view[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    return filled


def import_object_to_volume(s3: Any, bucket: str, key: str, dest_file: str | os.PathLike) -> int:
    """Turn the QCOW2 object `bucket/key` into sparse raw file `dest_file`; return its size.

    Raises ObjectMissing (404 not_found) or ImageRefused (400 invalid_arguments) like the real
    import; botocore errors (network) pass through.
    """
    try:
        head = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{CLUSTER_SIZE - 1}")
        parse_header(head["Body"].read())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchBucket", "404"):
            raise ObjectMissing(bucket, key) from None
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # empty object
            parse_header(b"")
        raise
    dest = Path(dest_file)
    download = dest.with_name(dest.name + ".qcow2-download")
    try:
        s3.download_file(bucket, key, str(download))
        return read_qcow2(download, dest)
    finally:
        download.unlink(missing_ok=True)
