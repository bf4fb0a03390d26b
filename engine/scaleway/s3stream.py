"""Streams over S3 objects with bounded memory.

:class:`RangedReader` reads an object in order while N ranged GETs fetch the parts ahead of it
into a fixed window of reused buffers (so the store pipeline reads it like a file, with no local
copy). :class:`MultipartWriter` is the other direction: sequential writes become a multipart
upload of at most 1000 parts, several parts in flight, a bounded number of buffers.

A read cut short is asked again from where it stopped, after the retry policy's jittered delay
(engine.retry); uploads rely on botocore's own retries (each part is one idempotent call).
"""
from __future__ import annotations

import collections
import io
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError

from engine.errors import OperationError
from engine.retry import RetryPolicy
from engine.scaleway.api import scw_message

MiB = 1024 * 1024
MAX_PARTS = 1000
MIN_PART = 8 * MiB
# Reads that fail mid-body: botocore retries the GET itself, not a body cut afterwards.
READ_RETRY = RetryPolicy(attempts=5, base=0.5, cap=10.0)
_READ_ERRORS = (BotoCoreError, ClientError, OSError, HTTPError)


class Cancelled(Exception):
    """The job was cancelled while data was moving."""


def part_size_for(size: int) -> int:
    """Scaleway allows at most 1000 parts: max(8 MiB, ceil(size / 1000))."""
    return max(MIN_PART, math.ceil(size / MAX_PARTS))


class _Retries:
    """The readers' shared retry rule: a failed read is final after the policy's attempts or on
    403/404; otherwise wait the policy's jittered delay (cut short by cancel or close)."""

    retry: RetryPolicy
    cancel: threading.Event
    bucket: str
    key: str
    _closing: bool

    def _after_failure(self, exc: BaseException, failures: int) -> None:
        if failures >= self.retry.attempts or (isinstance(exc, ClientError) and
                                               _client_status(exc) in (403, 404)):
            raise OperationError(f"reading s3://{self.bucket}/{self.key} failed: "
                                 f"{scw_message(exc)}") from None
        self._pause(self.retry.delay(failures - 1))

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not (self.cancel.is_set() or self._closing):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.cancel.wait(min(left, 0.1))


class RangedReader(_Retries, io.RawIOBase):
    """A readable stream over ``s3://bucket/key`` fed by concurrent ranged GETs, in order."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int, *, part_size: int = 8 * MiB,
                 concurrency: int = 8, window: int | None = None,
                 cancel: threading.Event | None = None, retry: RetryPolicy = READ_RETRY,
                 on_eof: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.s3, self.bucket, self.key, self.size = s3, bucket, key, size
        self.part_size, self.retry = part_size, retry
        self.cancel = cancel or threading.Event()
        self.on_eof = on_eof
        self.bytes_fetched = 0
        self.retries = 0
        nbuf = window or concurrency * 2
        self._free: list[bytearray] = []
        self._nbuf = max(nbuf, 1)
        self._allocated = 0
        self._pool = ThreadPoolExecutor(max_workers=concurrency,
                                        thread_name_prefix="s3-get")
        self._pending: collections.deque[Future[tuple[bytearray, int]]] = collections.deque()
        self._next_part = 0
        self._nparts = math.ceil(size / part_size) if size else 0
        self._current: memoryview | None = None
        self._current_buf: bytearray | None = None
        self._pos_in_part = 0
        self._lock = threading.Lock()
        self._closing = False
        self._fill()

    # -- io.RawIOBase
    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.cancel.is_set():
            raise Cancelled("cancelled")
        out = memoryview(b).cast("B")
        done = 0
        while done < len(out):
            if self._current is None or self._pos_in_part >= len(self._current):
                if not self._advance():
                    break
            assert self._current is not None
            n = min(len(out) - done, len(self._current) - self._pos_in_part)
            out[done:done + n] = self._current[self._pos_in_part:self._pos_in_part + n]
            self._pos_in_part += n
            done += n
        return done

    def close(self) -> None:
        if not self.closed:
            self._closing = True
            for fut in self._pending:
                fut.cancel()
            self._pool.shutdown(wait=True, cancel_futures=True)
        super().close()

    # -- internals
    def _advance(self) -> bool:
        if self._current_buf is not None:
            self._release(self._current_buf)
            self._current = self._current_buf = None
        if not self._pending:
            if self.on_eof:
                self.on_eof()
                self.on_eof = None
            return False
        fut = self._pending.popleft()
        try:
            buf, n = fut.result()
        except Exception:
            self._abandon()
            raise
        self._current_buf, self._current, self._pos_in_part = buf, memoryview(buf)[:n], 0
        self._fill()
        return True

    def _fill(self) -> None:
        while self._next_part < self._nparts and len(self._pending) < self._nbuf - (
                1 if self._current_buf is not None else 0):
            buf = self._take()
            index = self._next_part
            self._next_part += 1
            self._pending.append(self._pool.submit(self._fetch, index, buf))

    def _take(self) -> bytearray:
        with self._lock:
            if self._free:
                return self._free.pop()
        # Reused afterwards: fresh memory is slow on these machines.
        self._allocated += 1
        return bytearray(self.part_size)

    def _release(self, buf: bytearray) -> None:
        with self._lock:
            self._free.append(buf)

    def _abandon(self) -> None:
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()

    def _fetch(self, index: int, buf: bytearray) -> tuple[bytearray, int]:
        start = index * self.part_size
        length = min(self.part_size, self.size - start)
        view = memoryview(buf)
        got = 0
        failures = 0
        while got < length:
            if self.cancel.is_set() or self._closing:
                raise Cancelled("cancelled")
            try:
                got += self._get_range(start + got, length - got, view[got:length])
            except _READ_ERRORS as exc:
                # A dropped connection: ask again (after a delay) for what is still missing.
                failures += 1
                with self._lock:
                    self.retries += 1
                self._after_failure(exc, failures)
        return buf, length

    def _get_range(self, offset: int, length: int, into: memoryview) -> int:
        resp = self.s3.get_object(Bucket=self.bucket, Key=self.key,
                                  Range=f"bytes={offset}-{offset + length - 1}")
        body = resp["Body"]
        raw = _direct_stream(body)
        got = 0
        try:
            while got < length:
                if raw is not None:
                    n = raw.readinto(into[got:length])
                else:
                    data = body.read(min(length - got, 1 * MiB))
                    n = len(data)
                    into[got:got + n] = data
                if not n:
                    break
                got += n
                with self._lock:
                    self.bytes_fetched += n
        finally:
            body.close()
        if got == 0:
            raise OSError(f"empty answer for bytes {offset}-{offset + length - 1}")
        return got


def _direct_stream(body: Any) -> Any:
    """The socket-level response under botocore's StreamingBody, read straight into our buffers
    (urllib3's own readinto allocates a bytes object and copies it); None to use body.read."""
    raw = getattr(body, "_raw_stream", None)
    if raw is None:
        return None
    fp = getattr(raw, "_fp", None)
    # Only an identity-encoded body can be read under urllib3 (no gzip on S3 objects).
    if fp is not None and hasattr(fp, "readinto") and not raw.headers.get("content-encoding"):
        return fp
    return raw if hasattr(raw, "readinto") else None


def _client_status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


class MultipartWriter(io.RawIOBase):
    """A writable stream that becomes ``s3://bucket/key`` through a multipart upload.

    ``size`` (when known) sets the part size so the object fits in 1000 parts. Parts are
    uploaded concurrently; at most ``concurrency + 1`` part buffers exist at any time.
    Call :meth:`commit` at the end (or :meth:`abort`); ``close`` without commit aborts.
    """

    def __init__(self, s3: Any, bucket: str, key: str, size: int | None = None, *,
                 concurrency: int = 4, cancel: threading.Event | None = None,
                 metadata: dict[str, str] | None = None,
                 on_progress: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.s3, self.bucket, self.key = s3, bucket, key
        self.part_size = part_size_for(size or 0)
        self.cancel = cancel or threading.Event()
        self.on_progress = on_progress
        self.bytes_written = 0
        self.bytes_uploaded = 0
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3-put")
        self._slots = threading.Semaphore(concurrency)
        self._free: list[bytearray] = []
        self._lock = threading.Lock()
        self._parts: dict[int, str] = {}
        self._futures: list[Future[None]] = []
        self._error: BaseException | None = None
        self._buf = bytearray(self.part_size)
        self._fill = 0
        self._next_number = 1
        self._finished = False
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if metadata:
            kwargs["Metadata"] = metadata
        try:
            self.upload_id: str = s3.create_multipart_upload(**kwargs)["UploadId"]
        except (BotoCoreError, ClientError) as exc:
            raise OperationError(f"cannot start the upload to s3://{bucket}/{key}: "
                                 f"{scw_message(exc)}") from None

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        if self.cancel.is_set():
            raise Cancelled("cancelled")
        self._raise_error()
        view = memoryview(b).cast("B")
        done = 0
        while done < len(view):
            n = min(len(view) - done, self.part_size - self._fill)
            self._buf[self._fill:self._fill + n] = view[done:done + n]
            self._fill += n
            done += n
            if self._fill == self.part_size:
                self._flush_part()
        self.bytes_written += done
        return done

    def commit(self) -> None:
        """Upload what is left and complete the upload; the object exists afterwards."""
        if self._fill or self._next_number == 1:
            self._flush_part()
        for fut in self._futures:
            fut.exception()
        self._raise_error()
        parts = [{"PartNumber": n, "ETag": self._parts[n]} for n in sorted(self._parts)]
        try:
            self.s3.complete_multipart_upload(Bucket=self.bucket, Key=self.key,
                                              UploadId=self.upload_id,
                                              MultipartUpload={"Parts": parts})
        except (BotoCoreError, ClientError) as exc:
            self.abort()
            raise OperationError(f"completing the upload to s3://{self.bucket}/{self.key} "
                                 f"failed: {scw_message(exc)}") from None
        self._finished = True
        self._pool.shutdown(wait=True)
        self._abort_strays()

    def _abort_strays(self) -> None:
        """Abort the other uploads of our key: a start whose answer a dropped connection lost
        was retried, and the upload it made server-side is ours alone (the key is one job's)
        but would otherwise stay, taking space, until the bucket's lifecycle rule."""
        try:
            listing = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=self.key)
            for up in listing.get("Uploads", []):
                if up["Key"] == self.key and up["UploadId"] != self.upload_id:
                    self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key,
                                                   UploadId=up["UploadId"])
        except (BotoCoreError, ClientError):
            pass  # the flow's cleanup lists the job's uploads again

    def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        self.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key,
                                           UploadId=self.upload_id)
        except (BotoCoreError, ClientError):
            pass  # nothing to undo, or S3 will expire it; a later cleanup also lists uploads
        self._abort_strays()

    def close(self) -> None:
        if not self.closed and not self._finished:
            self.abort()
        super().close()

    def _flush_part(self) -> None:
        number = self._next_number
        if number > MAX_PARTS:
            raise OperationError(f"the image is larger than {MAX_PARTS} parts of "
                                 f"{self.part_size} bytes; give its size to the upload")
        self._next_number += 1
        buf, length = self._buf, self._fill
        self._slots.acquire()
        self._raise_error(release=True)
        self._futures.append(self._pool.submit(self._upload, number, buf, length))
        with self._lock:
            self._buf = self._free.pop() if self._free else bytearray(self.part_size)
        self._fill = 0

    def _upload(self, number: int, buf: bytearray, length: int) -> None:
        try:
            if self.cancel.is_set():
                raise Cancelled("cancelled")
            resp = self.s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                       PartNumber=number, Body=bytes(memoryview(buf)[:length]))
            with self._lock:
                self._parts[number] = resp["ETag"]
                self.bytes_uploaded += length
                uploaded = self.bytes_uploaded
            if self.on_progress:
                self.on_progress(uploaded)
        except BaseException as exc:
            with self._lock:
                if self._error is None:
                    self._error = exc
        finally:
            with self._lock:
                self._free.append(buf)
            self._slots.release()

    def _raise_error(self, release: bool = False) -> None:
        with self._lock:
            err = self._error
        if err is None:
            return
        if release:
            self._slots.release()
        if isinstance(err, (Cancelled, OperationError)):
            raise err
        if isinstance(err, (BotoCoreError, ClientError)):
            raise OperationError(f"uploading to s3://{self.bucket}/{self.key} failed: "
                                 f"{scw_message(err)}") from None
        raise err


class StreamReader(_Retries, io.RawIOBase):
    """One streamed GET read in order; a cut connection resumes with a ranged GET from where it
    stopped. For servers where each ranged GET costs as much as the whole object (moto's)."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int, *,
                 cancel: threading.Event | None = None, retry: RetryPolicy = READ_RETRY,
                 on_eof: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.s3, self.bucket, self.key, self.size = s3, bucket, key, size
        self.cancel = cancel or threading.Event()
        self.retry, self.on_eof = retry, on_eof
        self._closing = False
        self.pos = 0
        self.retries = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.cancel.is_set():
            raise Cancelled("cancelled")
        out = memoryview(b).cast("B")
        want = min(len(out), self.size - self.pos)
        if want <= 0:
            if self.on_eof:
                self.on_eof()
                self.on_eof = None
            return 0
        failures = 0
        while True:
            if self.cancel.is_set():
                raise Cancelled("cancelled")
            try:
                if self._body is None:
                    self._body = self.s3.get_object(
                        Bucket=self.bucket, Key=self.key,
                        Range=f"bytes={self.pos}-{self.size - 1}")["Body"]
                raw = _direct_stream(self._body)
                n = raw.readinto(out[:want]) if raw is not None else self._read_into(out, want)
                if not n:
                    raise OSError("the connection ended early")
                self.pos += n
                return n
            except _READ_ERRORS as exc:
                self._drop_body()
                failures += 1
                self.retries += 1
                self._after_failure(exc, failures)

    def _read_into(self, out: memoryview, want: int) -> int:
        data = self._body.read(want)
        out[:len(data)] = data
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            try:
                self._body.close()
            except Exception:
                pass
            self._body = None

    def close(self) -> None:
        self._closing = True
        self._drop_body()
        super().close()
