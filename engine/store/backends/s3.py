"""The S3 backend: a store under ``s3://bucket/prefix``, on Scaleway Object Storage by default.

Where it connects (:func:`connect`): the Scaleway profile the connector uses (``--profile`` /
``SCW_PROFILE``, its config file and the ``SCW_*`` variables over it) gives the keys and the
region; the endpoint is ``https://s3.{region}.scw.cloud`` (``STRONGROOM_S3_ENDPOINT`` overrides
it); the boto3 client has the connector's settings (``engine.scaleway.config.boto_s3_client``:
virtual-host addressing on Scaleway, path style elsewhere, checksums only where required, as
Scaleway accepts). With no Scaleway credentials but AWS ones in the environment, boto3's usual
chain.

Every request goes through :meth:`S3Backend._call`: 429, 5xx and dropped connections are tried
again with the one retry policy (``engine.retry``: exponential backoff, full jitter); one that
fails for good is one :class:`OperationError` naming the object. botocore's own retries are off
for this client, so no request is retried by two loops.

Writes: every ``put`` is one PUT, which S3 makes atomic. ``exclusive`` puts are conditional
creates (``If-None-Match: *``) and :meth:`S3Backend.replace` a conditional rewrite
(``If-Match: <our ETag>``), where the server honours them; a first exclusive put finds out
whether it does (see :meth:`S3Backend._probe`). Where it does not, an exclusive put looks
first and re-reads after (docs/FORMAT.md §11).
"""
from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from engine.errors import OperationError, UsageError
from engine.retry import RetryPolicy
from engine.store.backends.base import Buffer, NotFound, PageBuffer, Stat, TempFile

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

T = TypeVar("T")
# A store request is small and idempotent (or made so): patient, since a backup of hours must
# not fail on a minute of 503s, yet bounded (about a minute of trying at most).
# STRONGROOM_S3_ATTEMPTS changes how many tries (a test of failures for good wants few).
STORE_RETRY = RetryPolicy(attempts=10, base=0.25, cap=10.0)


def store_retry() -> RetryPolicy:
    attempts = os.environ.get("STRONGROOM_S3_ATTEMPTS", "")
    if not attempts:
        return STORE_RETRY
    try:
        return dataclasses.replace(STORE_RETRY, attempts=max(1, int(attempts)))
    except ValueError:
        raise UsageError(f"STRONGROOM_S3_ATTEMPTS must be a whole number, not {attempts!r}") \
            from None
_MISSING = ("404", "NoSuchKey", "NotFound")
_TRANSIENT_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "TooManyRequests",
                              "RequestTimeout", "InternalError", "ServiceUnavailable"})
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class S3Place:
    """Where a store lives: the client to reach it, its region and how it was configured."""

    client: Any           # a boto3 S3 client
    region: str
    endpoint: str
    source: str           # where the keys came from, for messages ("Scaleway profile 'x'")


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → (bucket, ``some/prefix/``); UsageError if malformed."""
    from engine.settings import store_url_problem

    problem = store_url_problem(url)
    if problem:
        raise UsageError(f"bad store URL {url!r}: {problem}")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    return bucket, prefix + "/" if prefix else ""


def connect(profile: str | None = None) -> S3Place:
    """The client for a store on Object Storage: the Scaleway profile's keys and region, the
    connector's client settings. Falls back to boto3's own chain (AWS_* variables) when no
    Scaleway credentials are set and no profile was asked for."""
    from engine.scaleway.config import boto_s3_client, s3_endpoint, scw_client

    try:
        scw = scw_client(profile)
    except UsageError:
        if profile or not os.environ.get("AWS_ACCESS_KEY_ID"):
            raise
        return _connect_plain()
    region = scw.default_region or "fr-par"
    # attempts=1: retries are ours (STORE_RETRY), not botocore's
    client = boto_s3_client(s3_endpoint(region), region, scw.access_key, scw.secret_key,
                            attempts=1)
    name = profile or os.environ.get("SCW_PROFILE") or "default"
    return S3Place(client, region, s3_endpoint(region), f"Scaleway profile {name!r}")


def _connect_plain() -> S3Place:
    """Any S3 service, with boto3's credential chain (AWS_* variables, ~/.aws)."""
    from engine.scaleway.config import boto_s3_client

    region = (os.environ.get("SCW_DEFAULT_REGION") or os.environ.get("AWS_DEFAULT_REGION")
              or "fr-par")
    endpoint = os.environ.get("STRONGROOM_S3_ENDPOINT") or None
    client = boto_s3_client(endpoint, region, attempts=1)
    return S3Place(client, region, endpoint or "AWS", "AWS_* variables")


def is_transient(exc: BaseException) -> bool:
    """Worth trying again: a throttle, a server error, a connection dropped or timed out."""
    from botocore.exceptions import (ClientError, ConnectionError, HTTPClientError,
                                     IncompleteReadError)
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status in _TRANSIENT_STATUSES or _code(exc) in _TRANSIENT_CODES
    return isinstance(exc, (ConnectionError, HTTPClientError, IncompleteReadError, HTTPError,
                            TimeoutError, ConnectionResetError, BrokenPipeError))


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")


def _refuses_conditions(exc: BaseException) -> bool:
    """An answer saying the server does not do conditional writes at all."""
    return _status(exc) == 501 or _code(exc) in ("NotImplemented", "InvalidArgument")


def _say(exc: BaseException) -> str:
    """The server's words for a failure, on one line (no secrets: S3 errors carry none)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        text = f"{err.get('Code') or _status(exc)}: {err.get('Message') or ''}".strip(" :")
        return " ".join(text.split())
    return " ".join(str(exc).split()) or type(exc).__name__


class S3Backend:
    """``place``: how to reach the store (default: :func:`connect` with ``profile``).
    ``create_bucket``: ``create()`` makes a missing bucket in the region (``init
    --create-bucket``). ``conditional_writes``: whether the server honours ``If-None-Match`` /
    ``If-Match`` (None: find out at the first exclusive put)."""

    def __init__(self, url: str, *, profile: str | None = None, place: S3Place | None = None,
                 create_bucket: bool = False, conditional_writes: bool | None = None,
                 retry: RetryPolicy | None = None):
        self.url = url
        self.bucket, self.prefix = parse_url(url)
        self.place = place or connect(profile)
        self.client, self.region = self.place.client, self.place.region
        self.create_bucket = create_bucket
        self.conditional_writes = conditional_writes
        self.retry = retry or store_retry()
        self._etags: dict[str, str] = {}  # name → ETag of our own last write (for replace)
        self._region_checked = False

    # ---- requests, retried ------------------------------------------------------------------
    def _key(self, name: str) -> str:
        return self.prefix + name

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` with the store's retry policy; a failure for good → one OperationError
        saying what was being done (4xx answers other than throttles are raised as they are,
        for the caller to read)."""
        try:
            return self.retry.call(fn, is_transient)
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise OperationError(
                f"{what} on s3://{self.bucket}/{self.prefix} failed {self.retry.attempts} times "
                f"({_say(exc)}): Object Storage at {self.place.endpoint} is unavailable; run it "
                "again later") from None

    # ---- the bucket --------------------------------------------------------------------------
    def exists(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._call("looking up the bucket", lambda: self.client.head_bucket(Bucket=self.bucket))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise self._bucket_error(exc) from None
        self._check_region()
        resp = self._call("listing the store", lambda: self.client.list_objects_v2(
            Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1))
        return bool(resp.get("KeyCount"))

    def _bucket_error(self, exc: ClientError) -> UsageError:
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        elsewhere = headers.get("x-amz-bucket-region")
        if elsewhere and elsewhere != self.region:
            return self._wrong_region(elsewhere)
        if _status(exc) == 403:
            return UsageError(f"access to bucket {self.bucket} was refused ({_say(exc)}): check "
                              f"that the keys of the {self.place.source} may use Object Storage "
                              "(`strongroom preflight`)")
        return UsageError(f"cannot use bucket {self.bucket} at {self.place.endpoint}: "
                          f"{_say(exc)}")

    def _wrong_region(self, actual: str) -> UsageError:
        return UsageError(f"bucket {self.bucket} is in region {actual}, but the store is reached "
                          f"in region {self.region} (from the {self.place.source}): use a "
                          f"profile or SCW_DEFAULT_REGION for {actual}, or a bucket in "
                          f"{self.region}")

    def _check_region(self) -> None:
        """A bucket of another region: one clear error rather than odd failures later. A key
        that may not read the bucket's location is not an error (the store may still work)."""
        from botocore.exceptions import ClientError

        if self._region_checked:
            return
        try:
            resp = self._call("reading the bucket's region", lambda: self.client
                              .get_bucket_location(Bucket=self.bucket))
        except ClientError:
            self._region_checked = True
            return
        actual = resp.get("LocationConstraint") or ""
        self._region_checked = True
        if actual and actual != self.region:
            raise self._wrong_region(actual)

    def create(self) -> None:
        """Make the bucket when asked (``create_bucket``) and it is missing; otherwise a
        missing bucket is a UsageError that says how."""
        from botocore.exceptions import ClientError

        try:
            self._call("looking up the bucket", lambda: self.client.head_bucket(Bucket=self.bucket))
            self._check_region()
            return
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise self._bucket_error(exc) from None
        if not self.create_bucket:
            raise UsageError(f"bucket {self.bucket} does not exist in region {self.region}: "
                             "pass --create-bucket to create it")
        try:
            self._call("creating the bucket", lambda: self.client.create_bucket(
                Bucket=self.bucket,
                CreateBucketConfiguration={"LocationConstraint": self.region}))
        except ClientError as exc:
            if _code(exc) == "BucketAlreadyOwnedByYou":
                return
            if _code(exc) == "BucketAlreadyExists":
                raise UsageError(f"bucket name {self.bucket} is taken by another account: "
                                 "choose another name") from None
            raise UsageError(f"cannot create bucket {self.bucket} in {self.region}: "
                             f"{_say(exc)}") from None
        self._region_checked = True

    # ---- writing -----------------------------------------------------------------------------
    def put(self, name: str, data: Buffer | Sequence[Buffer], *, exclusive: bool = False) -> None:
        if not exclusive and isinstance(data, (PageBuffer, bytes, bytearray, memoryview)):
            # a pack is sent from its buffer: a copy of each of the packs in flight cost the
            # backup ~32 MiB of memory apiece; each attempt reads the view from its start
            view = data.view() if isinstance(data, PageBuffer) else memoryview(data)
            resp = self._call(f"writing {name}", lambda: self.client.put_object(
                Bucket=self.bucket, Key=self._key(name), Body=ViewReader(view)))
            self._remember(name, resp)
            return
        body = _bytes(data)
        if exclusive:
            self._put_new(name, body)
            return
        resp = self._call(f"writing {name}", lambda: self.client.put_object(
            Bucket=self.bucket, Key=self._key(name), Body=body))
        self._remember(name, resp)

    def _remember(self, name: str, resp: dict) -> None:
        if name.startswith("locks/") and resp.get("ETag"):
            self._etags[name] = str(resp["ETag"])

    def _put_new(self, name: str, body: bytes) -> None:
        """Create ``name``; FileExistsError if it exists (someone else's, not ours)."""
        if self.conditional_writes is False:
            self._put_new_unconditional(name, body)
            return
        try:
            resp = self._call(f"creating {name}", lambda: self.client.put_object(
                Bucket=self.bucket, Key=self._key(name), Body=body, IfNoneMatch="*"))
        except Exception as exc:
            if self.conditional_writes is None and _refuses_conditions(exc):
                self.conditional_writes = False  # a server that rejects the header outright
                self._put_new_unconditional(name, body)
                return
            if _status(exc) != 412 and _code(exc) != "PreconditionFailed":
                raise
            # Ours, if an attempt whose answer was lost had made it: then it is not a conflict.
            if self._holds(name, body):
                return
            raise FileExistsError(name) from None
        self._remember(name, resp)
        if self.conditional_writes is None:
            self._probe(name, body)

    def _probe(self, name: str, body: bytes) -> None:
        """Does the server honour ``If-None-Match``? Create the same object again: a server
        that does refuses (412); one that ignores the header rewrites the same bytes."""
        try:
            self._call(f"creating {name}", lambda: self.client.put_object(
                Bucket=self.bucket, Key=self._key(name), Body=body, IfNoneMatch="*"))
        except Exception as exc:
            if _status(exc) == 412 or _code(exc) == "PreconditionFailed":
                self.conditional_writes = True
                return
            if _refuses_conditions(exc):
                self.conditional_writes = False  # refuses the header: the other way, from now
                return
            raise
        self.conditional_writes = False

    def _put_new_unconditional(self, name: str, body: bytes) -> None:
        """Without conditional writes: look, write, read back. Two writers of one name can
        still both write; the read-back tells the one that was overwritten (it raises)."""
        if self.stat(name) is not None:
            raise FileExistsError(name)
        resp = self._call(f"writing {name}", lambda: self.client.put_object(
            Bucket=self.bucket, Key=self._key(name), Body=body))
        self._remember(name, resp)
        if not self._holds(name, body):
            raise FileExistsError(name)

    def _holds(self, name: str, body: bytes) -> bool:
        try:
            return self._fetch(name, 0, None) == body
        except NotFound:
            return False

    def replace(self, name: str, data: Buffer | Sequence[Buffer]) -> None:
        """Rewrite a file this backend wrote: NotFound if it was removed (or replaced) since,
        never re-creating it. Conditional (``If-Match``) where the server honours it."""
        body = _bytes(data)
        etag = self._etags.get(name)
        if not self.conditional_writes or etag is None:
            if self.stat(name) is None:
                raise NotFound(f"store file {name} is missing")
            resp = self._call(f"writing {name}", lambda: self.client.put_object(
                Bucket=self.bucket, Key=self._key(name), Body=body))
            self._remember(name, resp)
            return
        try:
            resp = self._call(f"rewriting {name}", lambda: self.client.put_object(
                Bucket=self.bucket, Key=self._key(name), Body=body, IfMatch=etag))
        except Exception as exc:
            if _status(exc) in (404, 412) or _code(exc) in ("PreconditionFailed", *_MISSING):
                if _status(exc) == 412 and self._holds(name, body):
                    return  # our own rewrite, whose answer was lost and then tried again
                raise NotFound(f"store file {name} was removed or replaced by another "
                               "process") from None
            raise
        self._remember(name, resp)

    # ---- reading -----------------------------------------------------------------------------
    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self._fetch(name, offset, length)
        if length is not None and len(data) != length:
            raise OperationError("store file is shorter than its index says (truncated or "
                                 "damaged)")
        return data

    def _fetch(self, name: str, offset: int, length: int | None) -> bytes:
        """One (ranged) GET, its body read inside the retry: a body cut mid-way is asked again."""
        from botocore.exceptions import ClientError

        kwargs = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            kwargs["Range"] = f"bytes={offset}-{end}"

        def read() -> bytes:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(name), **kwargs)
            return resp["Body"].read()

        try:
            return self._call(f"reading {name}", read)
        except ClientError as exc:
            if _code(exc) in (*_MISSING, "NoSuchKey"):
                raise NotFound(f"store file {name} is missing") from None
            raise OperationError(f"reading {name} from s3://{self.bucket} failed: "
                                 f"{_say(exc)}") from None

    def open_range(self, name: str, offset: int, length: int | None) -> BinaryIO:
        """Bytes ``offset:offset+length`` (to the end when ``length`` is None) as a stream (one
        ranged GET whose body is read as it comes): restores read a whole pack's span blob by
        blob without holding it. A body cut mid-way is asked again from where it stopped
        (:class:`_ResumedRange`)."""
        return _ResumedRange(self, name, offset, length)

    def _open_body(self, name: str, start: int, end: int | None) -> Any:
        """The streaming body of one ranged GET of bytes ``start:end`` (to the object's end
        when ``end`` is None; the request retried)."""
        from botocore.exceptions import ClientError

        last = "" if end is None else end - 1
        try:
            resp = self._call(f"reading {name}", lambda: self.client.get_object(
                Bucket=self.bucket, Key=self._key(name), Range=f"bytes={start}-{last}"))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise NotFound(f"store file {name} is missing") from None
            raise OperationError(f"reading {name} from s3://{self.bucket} failed: "
                                 f"{_say(exc)}") from None
        return resp["Body"]

    def list(self, prefix: str) -> Iterator[Stat]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key(prefix)}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(f"listing {prefix or 'the store'}",
                              lambda: self.client.list_objects_v2(**kwargs))
            for obj in page.get("Contents", []):
                yield Stat(obj["Key"][len(self.prefix):], int(obj["Size"]))
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            if not token:
                return

    def stat(self, name: str) -> Stat | None:
        from botocore.exceptions import ClientError

        try:
            resp = self._call(f"looking up {name}", lambda: self.client.head_object(
                Bucket=self.bucket, Key=self._key(name)))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise OperationError(f"looking up {name} in s3://{self.bucket} failed: "
                                 f"{_say(exc)}") from None
        return Stat(name, int(resp["ContentLength"]))

    def delete(self, name: str) -> None:
        self._call(f"deleting {name}", lambda: self.client.delete_object(
            Bucket=self.bucket, Key=self._key(name)))
        self._etags.pop(name, None)

    def temp_files(self) -> list[TempFile]:
        return []  # a PUT is one call: nothing half-written is ever visible

    def remove_dead_temp_files(self) -> list[TempFile]:
        return []


class _ResumedRange:
    """A ranged GET's body that, when the connection drops mid-way (or the body ends short),
    asks for the rest again from where it stopped, with the backend's retry policy."""

    def __init__(self, backend: S3Backend, name: str, offset: int, length: int | None) -> None:
        self.backend, self.name = backend, name
        self.pos = offset
        self.end = None if length is None else offset + length  # None: the object's end
        self.failures = 0
        self.body: Any = backend._open_body(name, self.pos, self.end) if length != 0 else None

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all that is left when ``n`` is negative); b"" at the end."""
        left = None if self.end is None else self.end - self.pos
        want = left if n is None or n < 0 else n if left is None else min(n, left)
        while self.body is not None and (want is None or want > 0):
            try:
                data = self.body.read(want)
            except Exception as exc:
                if not (is_transient(exc) or _cut(exc)):
                    raise
            else:
                if data:
                    self.pos += len(data)
                    return data
                if self.end is None:  # the object's end: a body cut short raises in botocore
                    return b""
            self._resume()  # cut short: what is left, again
        return b""

    def _resume(self) -> None:
        self.failures += 1
        retry = self.backend.retry
        if self.failures >= retry.attempts:
            raise OperationError(f"reading {self.name} from s3://{self.backend.bucket} was cut "
                                 f"off {self.failures} times: Object Storage at "
                                 f"{self.backend.place.endpoint} is unavailable; run it again "
                                 "later")
        self.close()
        import time

        time.sleep(retry.delay(self.failures - 1))
        self.body = self.backend._open_body(self.name, self.pos, self.end)

    def close(self) -> None:
        if self.body is not None:
            try:
                self.body.close()
            except Exception:
                pass


def _cut(exc: BaseException) -> bool:
    """A body that broke off: urllib3's and botocore's words for it."""
    from botocore.exceptions import ResponseStreamingError

    return isinstance(exc, (ResponseStreamingError, OSError))


class ViewReader(io.RawIOBase):
    """A seekable, read-only file over a memoryview, for boto3 to send without a copy."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view, self._pos = view.cast("B"), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Buffer) -> int:  # type: ignore[override]
        out = memoryview(b).cast("B")
        n = min(len(out), len(self._view) - self._pos)
        out[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


def _bytes(data: Buffer | Sequence[Buffer]) -> bytes:
    if isinstance(data, PageBuffer):
        data = data.view()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    return b"".join(bytes(d.view()) if isinstance(d, PageBuffer) else d for d in data)
