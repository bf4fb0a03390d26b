"""The sandbox's Object Storage: moto's S3 server as a real process, behind a fault proxy.

`S3Server` starts `moto.server` on 127.0.0.1 (a free port), creates one staging bucket per
Scaleway region with that region as its `LocationConstraint`, and puts a small TCP proxy in front
of it. Clients get the proxy's address (`endpoint`): the proxy can cut response bodies mid-way
("S3 connection dropped"), and checks what moto does not: SigV4 signatures, in the
`Authorization` header or a presigned URL (a wrong secret gets `SignatureDoesNotMatch`, an
unknown access key `InvalidAccessKeyId`, no signature or an expired URL `AccessDenied`), and
each key's object rights (a key that may only read gets `AccessDenied` for a write, a key with
no Object Storage right for anything), as the real service answers. The keys and their rights
come from an `authority` (the sandbox's IAM, asked at each request); without one, from
`secrets` (signatures only) and `denied_keys`.

moto keeps objects in memory. So that a restarted sandbox finds what was in its buckets, `stop()`
saves every object under `<state_dir>/s3/<bucket>/` and `start()` puts them back (staging objects
are temporary by nature: the flows delete them, so this is usually empty).
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import hmac
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REGIONS = ("fr-par", "nl-ams", "pl-waw", "it-mil")
BUCKET_PREFIX = "strongroom-staging-"
STAGING_BUCKETS: dict[str, str] = {region: BUCKET_PREFIX + region for region in REGIONS}

# Runs moto in a child that exits when its parent dies, so a killed sandbox leaves no server.
_LAUNCHER = """
import os, sys, threading, time
parent = os.getppid()
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(sys.argv[1:])
"""


def bucket_region(bucket: str) -> str | None:
    """The region of a staging bucket (`strongroom-staging-nl-ams` → `nl-ams`), else None."""
    for region, name in STAGING_BUCKETS.items():
        if name == bucket:
            return region
    return None


def s3_client(endpoint: str, access_key: str, secret_key: str, region: str = "fr-par") -> Any:
    """A boto3 S3 client for the sandbox (or Scaleway): path-style addressing, given keys."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            # Scaleway does not support the newer default CRC checksums on every call
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- fault proxy -----------------------------------------------------------------------------


@dataclass
class DropRule:
    """Cut response bodies: each with probability `rate`, or the next `count` ones, after
    `after_bytes` body bytes (bodies no longer than that are left alone)."""

    rate: float = 0.0
    count: int = 0
    after_bytes: int = 65536


@dataclass
class RequestFaults:
    """What a flaky Object Storage does to requests (not only to bodies): each request is
    answered 429 or 503 with probability ``rate_429`` / ``rate_503``, or its connection is reset
    after the server did the work (the answer lost) with probability ``rate_drop``; after
    ``fail_writes_after`` more writes (PUT, POST, DELETE) every write answers 503 for good (-1:
    never). ``ignore_conditional``: the server ignores ``If-None-Match`` / ``If-Match`` on
    PUT, as some S3 implementations do. ``mib_per_s``: each answer's body is sent at most this
    fast (a slow link; 0: no limit)."""

    rate_429: float = 0.0
    rate_503: float = 0.0
    rate_drop: float = 0.0
    fail_writes_after: int = -1
    ignore_conditional: bool = False
    mib_per_s: float = 0.0


@dataclass
class ProxyStats:
    connections: int = 0
    dropped: int = 0
    denied: int = 0
    refused: int = 0     # answered 429 or 503 by a request fault
    reset: int = 0       # connections reset after the server answered


_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/\s,]+)/(?P<scope>[^\s,]+),\s*"
    r"SignedHeaders=(?P<signed>[^\s,]+),\s*Signature=(?P<signature>[0-9a-f]+)"
)


def _error_xml(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>sandbox</RequestId></Error>"
    ).encode()


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """(method, target, headers with lowercase names) of a raw HTTP request head."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


def _canonical_query(query: str, drop: str = "") -> str:
    pairs = sorted(tuple(pair.partition("=")[::2]) for pair in query.split("&")
                   if pair and pair.partition("=")[0] != drop)
    return "&".join(f"{key}={value}" for key, value in pairs)


@dataclass(frozen=True)
class KeyGrant:
    """What one access key may do on Object Storage: its secret, and whether it may read
    (list, get, head) and write (put, post, delete)."""

    secret: str
    read: bool = True
    write: bool = True


# An access key -> its grant, or None for a key the service does not know.
Authority = Callable[[str], "KeyGrant | None"]

_DENIED = ("AccessDenied", "Access Denied.")
_BAD_SIGNATURE = ("SignatureDoesNotMatch",
                  "The request signature we calculated does not match the signature you provided.")
_UNKNOWN_KEY = ("InvalidAccessKeyId",
                "The AWS access key Id you provided does not exist in our records.")


@dataclass(frozen=True)
class _Signed:
    """The SigV4 parts of a request, from its Authorization header or its presigned query."""

    key: str
    scope: str
    signed: str
    signature: str
    amz_date: str
    payload: str
    query: str  # the canonical query string the signature covers
    expires: int | None = None  # seconds after amz_date (presigned URLs)


def _signed_parts(method: str, target: str, headers: dict[str, str]) -> _Signed | None:
    path, _, query = target.partition("?")
    params = {k: urllib.parse.unquote(v) for k, _, v in
              (pair.partition("=") for pair in query.split("&") if pair)}
    if "X-Amz-Signature" in params:
        key, _, scope = params.get("X-Amz-Credential", "").partition("/")
        try:
            expires = int(params.get("X-Amz-Expires", "0"))
        except ValueError:
            expires = 0
        return _Signed(key=key, scope=scope, signed=params.get("X-Amz-SignedHeaders", ""),
                       signature=params["X-Amz-Signature"], amz_date=params.get("X-Amz-Date", ""),
                       payload="UNSIGNED-PAYLOAD",
                       query=_canonical_query(query, drop="X-Amz-Signature"), expires=expires)
    found = _AUTH.fullmatch(headers.get("authorization", ""))
    if not found:
        return None
    return _Signed(key=found["key"], scope=found["scope"], signed=found["signed"],
                   signature=found["signature"], amz_date=headers.get("x-amz-date", ""),
                   payload=headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                   query=_canonical_query(query))


def access_key_of(head: bytes) -> str | None:
    """The access key a request claims to be signed with (header or presigned), if any."""
    method, target, headers = _parse_head(head)
    parts = _signed_parts(method, target, headers)
    return parts.key if parts is not None else None


def check_signature(head: bytes, secret_of: Callable[[str], str | None]) -> tuple[str, str] | None:
    """Check a request's AWS SigV4 signature (an Authorization header, or a presigned URL's
    query) against the secret ``secret_of`` gives for its access key.

    Returns None when it is right, else (S3 error code, message). A request without any
    signature is refused, as Object Storage refuses anonymous access; so is an expired URL.
    """
    method, target, headers = _parse_head(head)
    parts = _signed_parts(method, target, headers)
    if parts is None:
        return _DENIED
    secret = secret_of(parts.key)
    if secret is None:
        return _UNKNOWN_KEY
    if parts.expires is not None:
        try:
            signed_at = datetime.strptime(parts.amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=timezone.utc)
        except ValueError:
            return _DENIED
        if signed_at.timestamp() + parts.expires < time.time():
            return ("AccessDenied", "Request has expired")
    date, region, service, _ = (parts.scope.split("/") + ["", "", "", ""])[:4]
    path = target.partition("?")[0]
    canonical = "\n".join([
        method, path, parts.query,
        "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n"
                for name in parts.signed.split(";")),
        parts.signed, parts.payload,
    ])
    to_sign = "\n".join([
        "AWS4-HMAC-SHA256", parts.amz_date, parts.scope,
        hashlib.sha256(canonical.encode()).hexdigest(),
    ])
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts.signature):
        return _BAD_SIGNATURE
    return None


def _without_conditions(head: bytes) -> bytes:
    """A PUT's head without If-None-Match / If-Match (checked signatures no longer matter)."""
    if not head.upper().startswith(b"PUT "):
        return head
    lines = head.split(b"\r\n")
    kept = [line for line in lines
            if not line.lower().startswith((b"if-none-match:", b"if-match:"))]
    return b"\r\n".join(kept)


def writes(method: str) -> bool:
    """Whether a request changes something: PUT, POST (uploads, multi-delete) and DELETE do;
    GET and HEAD read."""
    return method.upper() not in ("GET", "HEAD")


class FaultProxy:
    """A TCP proxy (asyncio, in its own thread) from 127.0.0.1:port to an upstream HTTP server.

    moto answers `Connection: close`, one response per connection, which is what lets the proxy
    find the body without parsing HTTP beyond the end of the headers.
    """

    def __init__(self, upstream_port: int, port: int = 0, seed: int = 0) -> None:
        self.upstream_port = upstream_port
        self.port = port
        self.drop = DropRule()
        self.faults = RequestFaults()
        self.denied_keys: set[str] = set()
        # access key -> secret key; when set, requests must be signed with one of them (SigV4)
        self.secrets: dict[str, str] | None = None
        # when set, each request's key, signature and rights are checked against it
        self.authority: Authority | None = None
        self.stats = ProxyStats()
        self._random = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task | None] = set()

    def set_drop(self, rate: float = 0.0, count: int = 0, after_bytes: int = 65536) -> None:
        """Change the drop rule at run time (rate 0 and count 0: never drop)."""
        self.drop = DropRule(rate=rate, count=count, after_bytes=after_bytes)

    def start(self) -> None:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._server.close()
            # idle keep-alive connections still wait in their handlers: end them quietly
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="s3-fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the S3 fault proxy did not start")

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def _should_drop(self) -> bool:
        rule = self.drop
        if rule.count > 0:
            rule.count -= 1
            return True
        return rule.rate > 0 and self._random.random() < rule.rate

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio holds handler tasks weakly: one whose connections are paused can be collected
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._proxy_one(reader, writer)
        except (asyncio.CancelledError, ConnectionError):
            # stopping, or the client went away: end quietly (asyncio logs a cancelled handler)
            writer.transport.abort()
        finally:
            self._tasks.discard(task)

    async def _proxy_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        refused = self.refusal(head)
        if refused is not None:
            self.stats.denied += 1
            await self._answer_refused(writer, *refused)
            return
        fault = self._request_fault(head)
        if fault in (429, 503):
            self.stats.refused += 1
            await self._answer_unavailable(writer, fault)
            return
        if self.faults.ignore_conditional:
            head = _without_conditions(head)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        up_writer.write(head)
        upload = asyncio.ensure_future(self._pipe(reader, up_writer))
        try:
            if fault == "reset":
                await self._lose_answer(up_reader, writer)
                return
            await self._relay_response(up_reader, writer)
        finally:
            upload.cancel()
            for stream in (writer, up_writer):
                stream.close()

    def refusal(self, head: bytes) -> tuple[str, str] | None:
        """Why the service would refuse this request (S3 error code, message), or None."""
        if self.authority is not None:
            key = access_key_of(head)
            grant = self.authority(key) if key else None
            refused = check_signature(
                head, lambda k: grant.secret if grant is not None and k == key else None)
            if refused is not None or grant is None:
                return refused or _UNKNOWN_KEY
            if not grant.read or (writes(_parse_head(head)[0]) and not grant.write):
                return _DENIED
            return None
        if self.secrets is not None:
            refused = check_signature(head, self.secrets.get)
            if refused is not None:
                return refused
        if access_key_of(head) in self.denied_keys:
            return _DENIED
        return None

    def _request_fault(self, head: bytes) -> int | str | None:
        """429, 503, "reset" or None for this request, as the request faults say."""
        rules = self.faults
        if writes(_parse_head(head)[0]) and rules.fail_writes_after >= 0:
            if rules.fail_writes_after == 0:
                return 503
            rules.fail_writes_after -= 1
        roll = self._random.random()
        if roll < rules.rate_429:
            return 429
        if roll < rules.rate_429 + rules.rate_503:
            return 503
        if roll < rules.rate_429 + rules.rate_503 + rules.rate_drop:
            return "reset"
        return None

    async def _answer_unavailable(self, writer: asyncio.StreamWriter, status: int) -> None:
        """Refuse before doing anything, as an overloaded Object Storage does."""
        code, reason = (("TooManyRequests", "Too Many Requests") if status == 429 else
                        ("ServiceUnavailable", "Service Unavailable"))
        body = _error_xml(code, "Please reduce your request rate." if status == 429 else
                          "The service is unavailable, try again.")
        writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (status, reason.encode(), len(body), body))
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def _lose_answer(self, up: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The server does the work; the client's connection is reset before the answer."""
        try:
            await up.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        self.stats.reset += 1
        writer.transport.abort()

    async def _answer_refused(self, writer: asyncio.StreamWriter, code: str, message: str) -> None:
        body = _error_xml(code, message)
        writer.write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 20):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def _relay_response(self, up: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await up.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        writer.write(head)
        sent, decided, cut_after = 0, False, 0
        while data := await up.read(1 << 20):
            # decided once a body gets longer than the cut point: short answers never count
            if not decided and sent + len(data) > self.drop.after_bytes:
                decided = True
                cut_after = self.drop.after_bytes if self._should_drop() else -1
            if decided and cut_after >= 0:
                writer.write(data[: max(0, cut_after - sent)])
                await writer.drain()
                self.stats.dropped += 1
                writer.transport.abort()  # a reset, as a dropped connection looks to a client
                return
            if self.faults.mib_per_s > 0:  # a slow link: the bytes arrive when it would let them
                await asyncio.sleep(len(data) / (self.faults.mib_per_s * (1 << 20)))
            writer.write(data)
            sent += len(data)
            try:
                await writer.drain()
            except ConnectionError:
                return


# --- moto server -----------------------------------------------------------------------------


@dataclass
class S3Server:
    """moto's S3 server process plus the fault proxy; a context manager.

    `endpoint` (the proxy) is what clients use; `moto_endpoint` bypasses the proxy.
    """

    state_dir: Path | None = None
    access_key: str = "SCWSANDBOXACCESSKEY0"
    secret_key: str = "sandbox-secret"
    port: int = 0  # the proxy's port (0: any free port)
    seed: int = 0
    # access key -> secret key: when given, the proxy refuses requests not signed by one of them
    secrets: dict[str, str] | None = None
    # when given, keys, signatures and each key's rights are checked against it (see FaultProxy)
    authority: Authority | None = None
    proxy: FaultProxy | None = field(default=None, init=False)
    moto_port: int = field(default=0, init=False)
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def endpoint(self) -> str:
        assert self.proxy is not None, "S3Server not started"
        return f"http://127.0.0.1:{self.proxy.port}"

    @property
    def moto_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    def client(self, region: str = "fr-par", keys: tuple[str, str] | None = None) -> Any:
        """A boto3 client through the proxy (default keys: the server's)."""
        access, secret = keys or (self.access_key, self.secret_key)
        return s3_client(self.endpoint, access, secret, region)

    def start(self, timeout: float = 90.0) -> S3Server:
        # moto imports Flask and boto: seconds on a quiet machine, far more on a loaded one;
        # a ready server is used at once, so only a broken start waits the deadline out
        self.moto_port = free_port()
        env = dict(os.environ, S3_IGNORE_SUBDOMAIN_BUCKETNAME="true")
        # moto logs every request: keep it in the state dir (why it failed), never on our terminal
        log = subprocess.DEVNULL
        if self.state_dir is not None:
            Path(self.state_dir).mkdir(parents=True, exist_ok=True)
            log = open(Path(self.state_dir) / "s3-server.log", "ab")  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _LAUNCHER, "-H", "127.0.0.1", "-p", str(self.moto_port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                # Its own session: Ctrl-C in a terminal signals the whole foreground process
                # group, and moto installs its own SIGINT handler (an ignored SIGINT does not
                # survive it), so it died before the sandbox could save its objects. The
                # launcher still exits with its parent.
                start_new_session=True,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        atexit.register(self._kill)
        self._wait_ready(timeout)
        self.proxy = FaultProxy(self.moto_port, self.port, self.seed)
        self.proxy.secrets = self.secrets
        self.proxy.authority = self.authority
        self.proxy.start()
        self._create_buckets()
        self._load_objects()
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                where = f" (see {self.state_dir}/s3-server.log)" if self.state_dir else ""
                raise RuntimeError(f"moto server exited with code {self._process.returncode}{where}")
            try:
                with urllib.request.urlopen(f"{self.moto_endpoint}/moto-api/", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self._kill()
        raise RuntimeError(f"moto server did not answer within {timeout:.0f} s")

    def _direct_client(self, region: str = "fr-par") -> Any:
        return s3_client(self.moto_endpoint, self.access_key, self.secret_key, region)

    def _create_buckets(self) -> None:
        for region, bucket in STAGING_BUCKETS.items():
            self._direct_client(region).create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
            )

    def _saved_dir(self) -> Path | None:
        return self.state_dir / "s3" if self.state_dir is not None else None

    def _load_objects(self) -> None:
        saved = self._saved_dir()
        if saved is None or not saved.is_dir():
            return
        for bucket_dir in saved.iterdir():
            region = bucket_region(bucket_dir.name)
            if region is None:
                continue
            client = self._direct_client(region)
            for path in bucket_dir.iterdir():
                key = urllib.parse.unquote(path.name)
                client.upload_file(str(path), bucket_dir.name, key)

    def save_objects(self) -> int:
        """Copy every staging object into `<state_dir>/s3/`; returns how many (0 without state)."""
        saved = self._saved_dir()
        if saved is None or self._process is None or self._process.poll() is not None:
            return 0
        tmp = saved.with_name("s3.saving")
        shutil.rmtree(tmp, ignore_errors=True)
        count = 0
        for region, bucket in STAGING_BUCKETS.items():
            client = self._direct_client(region)
            (tmp / bucket).mkdir(parents=True)
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for obj in page.get("Contents", []):
                    name = urllib.parse.quote(obj["Key"], safe="")
                    client.download_file(bucket, obj["Key"], str(tmp / bucket / name))
                    count += 1
        shutil.rmtree(saved, ignore_errors=True)
        tmp.rename(saved)
        return count

    def stop(self, save: bool = True) -> None:
        """Save objects (with a state dir, unless not ``save``), stop the proxy and the moto
        process."""
        try:
            if save:
                self.save_objects()
        finally:
            if self.proxy is not None:
                self.proxy.stop()
            # moto holds nothing more worth a clean exit (its SIGTERM handler took a second or
            # more to end its server and interpreter, on every quit of the demo)
            self._kill(at_once=True)

    def _kill(self, at_once: bool = False) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self._kill)
        if process.poll() is None and at_once:
            process.kill()
            process.wait(5)
        elif process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
