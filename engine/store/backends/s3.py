"""The S3 backend: a store under ``s3://bucket/prefix`` on any S3 endpoint.

Endpoint: ``STRONGROOM_S3_ENDPOINT`` (else boto3's default). Credentials: ``SCW_ACCESS_KEY`` /
``SCW_SECRET_KEY`` when set (Scaleway Object Storage), else boto3's usual chain. Region:
``SCW_DEFAULT_REGION``, else boto3's default. Every ``put`` is one PUT, which S3 makes atomic.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from engine.errors import OperationError, UsageError
from engine.store.backends.base import Buffer, NotFound, PageBuffer, Stat, TempFile


class S3Backend:
    def __init__(self, url: str):
        import boto3
        from botocore.config import Config

        rest = url.removeprefix("s3://")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise UsageError(f"bad store URL {url!r}: use s3://bucket/prefix")
        self.url, self.bucket = url, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        kwargs: dict = {"config": Config(max_pool_connections=16,
                                         retries={"max_attempts": 5, "mode": "standard"})}
        if os.environ.get("STRONGROOM_S3_ENDPOINT"):
            kwargs["endpoint_url"] = os.environ["STRONGROOM_S3_ENDPOINT"]
        if os.environ.get("SCW_ACCESS_KEY") and os.environ.get("SCW_SECRET_KEY"):
            kwargs["aws_access_key_id"] = os.environ["SCW_ACCESS_KEY"]
            kwargs["aws_secret_access_key"] = os.environ["SCW_SECRET_KEY"]
        if os.environ.get("SCW_DEFAULT_REGION"):
            kwargs["region_name"] = os.environ["SCW_DEFAULT_REGION"]
        self.client = boto3.client("s3", **kwargs)
        from botocore.exceptions import ClientError

        self._client_error = ClientError

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _code(self, exc: Exception) -> str:
        return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))

    def exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self._client_error as exc:
            if self._code(exc) in ("404", "NoSuchBucket", "403"):
                return False
            raise OperationError(f"cannot reach bucket {self.bucket}: {self._code(exc)}") from None
        resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        return bool(resp.get("KeyCount"))

    def create(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self._client_error:
            raise UsageError(f"bucket {self.bucket} does not exist or is not accessible: "
                             "create it first") from None

    def put(self, name: str, data: Buffer | Sequence[Buffer], *, exclusive: bool = False) -> None:
        if isinstance(data, PageBuffer):
            data = data.view()
        body = data if isinstance(data, (bytes, bytearray, memoryview)) else b"".join(data)
        if exclusive and self.stat(name) is not None:
            raise FileExistsError(name)
        self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=bytes(body))

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        kwargs = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            kwargs["Range"] = f"bytes={offset}-{end}"
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(name), **kwargs)
        except self._client_error as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                raise NotFound(f"store file {name} is missing") from None
            raise
        data = resp["Body"].read()
        if length is not None and len(data) != length:
            raise OperationError("store file is shorter than its index says (truncated or "
                                 "damaged)")
        return data

    def open_range(self, name: str, offset: int, length: int) -> BinaryIO:
        """Bytes ``offset:offset+length`` as a stream (one ranged GET whose body is read as
        it comes): restores read a whole pack's span blob by blob without holding it."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(name),
                                          Range=f"bytes={offset}-{offset + length - 1}")
        except self._client_error as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                raise NotFound(f"store file {name} is missing") from None
            raise
        return resp["Body"]

    def list(self, prefix: str) -> Iterator[Stat]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix))
        for page in pages:
            for obj in page.get("Contents", []):
                yield Stat(obj["Key"][len(self.prefix):], int(obj["Size"]))

    def stat(self, name: str) -> Stat | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except self._client_error as exc:
            if self._code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return Stat(name, int(resp["ContentLength"]))

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name))

    def temp_files(self) -> list[TempFile]:
        return []  # a PUT is one call: nothing half-written is ever visible

    def remove_dead_temp_files(self) -> list[TempFile]:
        return []
