"""Thin wrappers around the synchronous Scaleway SDK and boto3.

Every HTTP call goes through one place so that it is retried (429 and 5xx, exponential backoff
with jitter), timed and recorded with ``reporter.call(method, path, status, ms, request_id=…)``
for the job log (``X-Request-Id``: what Scaleway support asks for; recorders without that
keyword get the four arguments). The SDK and boto3 block: callers run them with :func:`call`
(``asyncio.to_thread``).

The real gateway answers a rate-limited call with an empty 429 (no JSON, no ``Retry-After``),
which the SDK cannot parse: such answers are handled here, before the SDK sees them, and once
the attempts run out they end in one :class:`GatewayError` that says what happened. When the
``X-Ratelimit-*`` headers say the limit is near, calls slow down (:class:`RateGauge`).

A POST creates something (a snapshot, an export, a volume): a 5xx or a dropped connection may
come after Scaleway did it, so it is not blindly sent again. It raises :class:`UncertainOutcome`,
and :func:`create_once` looks for what the attempt may have made before trying again. A 429 was
not processed, and reads, deletes of a known id and updates are idempotent: those are retried.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import requests
import urllib3
from botocore.exceptions import BotoCoreError, ClientError
from scaleway import Client, ScalewayException
from scaleway.account.v3 import AccountV3ProjectAPI
from scaleway.block.v1 import BlockV1API
from scaleway.iam.v1alpha1 import IamV1Alpha1API
from scaleway.instance.v1 import InstanceV1API

from engine.errors import OperationError
# The one retry policy; other modules import these two names from here too.
from engine.retry import DEFAULT_RETRY, RetryPolicy
from engine.scaleway.config import boto_s3_client, region_of, s3_endpoint

T = TypeVar("T")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Answers after which a POST may or may not have been carried out (429: it was not).
UNCERTAIN_STATUSES = RETRY_STATUSES - {429}


class CallRecorder(Protocol):
    def call(self, method: str, path: str, status: int | str, ms: float, *,
             request_id: str | None = None) -> None: ...


def request_id_of(response: Any) -> str | None:
    """The Scaleway answer's ``X-Request-Id``, if any."""
    headers = getattr(response, "headers", None) or {}
    return headers.get("X-Request-Id") or None


def _stamp(status: int | str, request_id: str | None) -> str:
    return f"[HTTP {status}" + (f", request id {request_id}]" if request_id else "]")


def scw_message(exc: BaseException) -> str:
    """Scaleway's own words for an API error, on one line (never the request's secrets), with
    the request id Scaleway support asks for."""
    if isinstance(exc, GatewayError):
        return exc.message
    if isinstance(exc, ScalewayException):
        status = exc.response.status_code
        stamp = _stamp(status, request_id_of(exc.response))
        try:
            body = exc.response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            text = str(body.get("message") or body.get("type") or "")
            details = [f"{k}: {v}" for k, v in body.items()
                       if k in ("resource", "resource_id", "precondition", "help_message") and v]
            for item in body.get("details") or []:
                if not isinstance(item, dict):
                    continue
                if item.get("action") or item.get("resource"):   # a 403: what was denied
                    details.append(f"{item.get('action', '?')} {item.get('resource', '?')}")
                elif item.get("argument_name"):
                    details.append(f"{item['argument_name']}: "
                                   f"{item.get('help_message') or item.get('reason', '')}")
            fields = body.get("fields")
            if isinstance(fields, dict):
                details += [f"{k}: {'; '.join(map(str, v)) if isinstance(v, list) else v}"
                            for k, v in fields.items()]
            if details:
                text += " (" + ", ".join(details) + ")"
            return f"{text} {stamp}"
        return f"{(exc.response.text or '').strip()[:200]} {stamp}".strip()
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        return (f"{err.get('Code', '')}: {err.get('Message', '')} "
                f"{_stamp(meta.get('HTTPStatusCode', '?'), meta.get('RequestId'))}")
    return " ".join(str(exc).split()) or type(exc).__name__


def status_of(exc: BaseException) -> int | None:
    if isinstance(exc, ScalewayException):
        return exc.response.status_code
    if isinstance(exc, ClientError):
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def is_not_found(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound",
                                                           "NoSuchBucket", "NoSuchUpload")
    return status_of(exc) == 404


def is_denied(exc: BaseException) -> bool:
    """A 403: the object exists but is not the caller's to see or change (another
    organization's snapshot answers so, not 404)."""
    return status_of(exc) == 403


class GatewayError(OperationError, ScalewayException):
    """An error answer without a JSON body (the gateway's empty 429, a bare 5xx) that the SDK
    cannot read, after the last attempt: one clear message, the request id included. Still a
    ``ScalewayException`` (``.response``), so every handler of API errors handles it."""

    def __init__(self, method: str, path: str, response: requests.Response,
                 attempts: int) -> None:
        self.response = response
        status = response.status_code
        stamp = _stamp(status, request_id_of(response))
        times = f" {attempts} times in a row" if attempts > 1 else ""
        if status == 429:
            self.message = (f"Scaleway rate-limited {method} {path}{times} {stamp}: too many "
                            f"calls for this API key; wait a minute, then retry")
        else:
            support = ", or ask Scaleway support with the request id" if request_id_of(
                response) else ""
            self.message = (f"Scaleway's gateway answered {method} {path} with no details"
                            f"{times} {stamp}; retry later{support}")
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return self.message


class UncertainOutcome(OperationError):
    """A creating call (POST) failed after it may have reached Scaleway: whether the thing was
    made is unknown until someone looks (see :func:`create_once`)."""

    def __init__(self, method: str, path: str, status: int | str,
                 request_id: str | None = None) -> None:
        self.method, self.path, self.status = method, path, status
        self.request_id = request_id
        super().__init__(f"Scaleway answered {status} to {method} {path}, which may have been "
                         f"done anyway: check the project for a duplicate, then retry"
                         + (f" (request id {request_id})" if request_id else ""))


def _never_sent(exc: requests.RequestException) -> bool:
    """The request cannot have reached the API: no connection was ever made."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(
        reason, urllib3.exceptions.NewConnectionError)


class _RetryableAnswer(Exception):
    """A 429 or 5xx answer to a call that may be sent again (only inside :func:`_install`)."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response
        self.retry_after = response.headers.get("Retry-After")  # read by the retry policy


def _readable(response: requests.Response) -> bool:
    """Whether the SDK can read this error answer (a JSON object body)."""
    try:
        return isinstance(response.json(), dict)
    except ValueError:     # requests' JSONDecodeError: an empty or non-JSON body
        return False


def recording(recorder: CallRecorder | None) -> Callable[..., None] | None:
    """``recorder.call`` that passes the request id only to recorders that take it (a recorder
    written before request ids keeps its four arguments)."""
    if recorder is None:
        return None
    try:
        params = inspect.signature(recorder.call).parameters.values()
    except (TypeError, ValueError):
        params = []  # type: ignore[assignment]
    takes = any(p.name == "request_id" or p.kind is inspect.Parameter.VAR_KEYWORD
                for p in params)

    def record(method: str, path: str, status: int | str, ms: float,
               request_id: str | None = None) -> None:
        if takes and request_id:
            recorder.call(method, path, status, ms, request_id=request_id)
        else:
            recorder.call(method, path, status, ms)

    return record


class RateGauge:
    """What the gateway's ``X-Ratelimit-*`` headers said last for one API key, so that calls
    slow down before the limit instead of running into 429s: above :attr:`LOW` of the window's
    calls left, no wait; below, the calls left are spread over what is left of the window;
    none left, the window's end is awaited. Thread-safe; shared by every API of the key."""

    LOW = 0.1
    MOST = 60.0    # never wait longer than this on the headers' word

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset_at = 0.0

    def note(self, headers: Mapping[str, str]) -> None:
        limit = _leading_int(headers.get("X-Ratelimit-Limit"))
        remaining = _leading_int(headers.get("X-Ratelimit-Remaining"))
        reset = _number(headers.get("X-Ratelimit-Reset"))
        if limit is None or remaining is None or reset is None:
            return
        if reset > 1e9:                 # an epoch time rather than seconds from now
            reset -= time.time()
        with self._lock:
            self.limit, self.remaining = limit, remaining
            self.reset_at = self._clock() + max(0.0, reset)

    def pause(self) -> float:
        """Seconds to wait before the next call (which it counts)."""
        with self._lock:
            if self.limit is None or self.remaining is None:
                return 0.0
            left = self.reset_at - self._clock()
            if left <= 0:                       # a new window: known at the next answer
                self.remaining = None
                return 0.0
            if self.remaining > max(1, int(self.limit * self.LOW)):
                self.remaining -= 1
                return 0.0
            wait = left if self.remaining <= 0 else left / (self.remaining + 1)
            self.remaining = max(0, self.remaining - 1)
            return min(wait, self.MOST)


def _leading_int(value: str | None) -> int | None:
    """``"1000, w=10"`` (Envoy's form) or ``"1000"`` → 1000."""
    try:
        return int(str(value).split(",")[0].strip()) if value not in (None, "") else None
    except ValueError:
        return None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except ValueError:
        return None


_GAUGES: dict[tuple[str, str], RateGauge] = {}
_GAUGES_LOCK = threading.Lock()


def rate_gauge(client: Any) -> RateGauge:
    """The one gauge of an API key (a rate limit counts per key, whichever object calls)."""
    key = (str(getattr(client, "api_url", "")), str(getattr(client, "access_key", "")))
    with _GAUGES_LOCK:
        return _GAUGES.setdefault(key, RateGauge())


def _install(api: Any, recorder: CallRecorder | None, retry: RetryPolicy,
             gauge: RateGauge | None = None) -> Any:
    """Wrap the SDK API object's single HTTP entry point with retries, the rate gauge and the
    call log."""
    original = api._request
    record = recording(recorder)
    gauge = gauge or RateGauge()

    def once(verb: str, method: str, path: str, args: Any, kwargs: Any) -> requests.Response:
        wait = gauge.pause()
        if wait > 0:
            time.sleep(wait)
        start = time.monotonic()
        try:
            res = original(method, path, *args, **kwargs)
        except requests.RequestException as exc:
            if record:
                record(verb, path, type(exc).__name__, (time.monotonic() - start) * 1000)
            if verb == "POST" and not _never_sent(exc):
                raise UncertainOutcome(verb, path, type(exc).__name__) from None
            raise
        gauge.note(res.headers)
        rid = request_id_of(res)
        if record:
            record(verb, path, res.status_code, (time.monotonic() - start) * 1000, rid)
        if verb == "POST" and res.status_code in UNCERTAIN_STATUSES:
            raise UncertainOutcome(verb, path, res.status_code, rid)
        if res.status_code in RETRY_STATUSES:
            raise _RetryableAnswer(res)
        return res

    def request(method: str, path: str, *args: Any, **kwargs: Any) -> requests.Response:
        verb = method.upper()
        try:
            res = retry.call(lambda: once(verb, method, path, args, kwargs), retry_on=lambda exc:
                             isinstance(exc, (_RetryableAnswer, requests.RequestException)))
        except _RetryableAnswer as exc:
            # still failing after every attempt: the SDK reports a readable answer; one it
            # cannot parse (the gateway's empty 429) is reported here, clearly
            if not _readable(exc.response):
                raise GatewayError(verb, path, exc.response, retry.attempts) from None
            return exc.response
        except requests.RequestException as exc:
            raise OperationError(f"cannot reach the Scaleway API ({api.client.api_url}): "
                                 f"{type(exc).__name__}; check the network or "
                                 f"SCW_API_URL") from None
        if res.status_code >= 400 and not _readable(res):
            raise GatewayError(verb, path, res, 1)
        return res

    api._request = request
    return api


def create_once(make: Callable[[], T], find: Callable[[], T | None], retry: RetryPolicy,
                what: str) -> T:
    """Run ``make``, a call that creates one thing, so that at most one thing is created.

    When an attempt ends in :class:`UncertainOutcome`, wait a backoff (the API may list what it
    made a moment late), then ``find`` what that attempt may have made, by the unique name, tags
    or markers the caller gave it: if it exists, it is adopted; only if not is ``make`` called
    again. Other errors (4xx answers, failures of ``find``) go through unchanged."""
    # Not a near-zero jitter here: a thing just made may take a moment to be listed.
    patient = retry.with_floor(retry.base)
    last: UncertainOutcome | None = None
    for attempt in range(retry.attempts):
        try:
            return make()
        except UncertainOutcome as exc:
            last = exc
        time.sleep(patient.delay(attempt))
        found = find()
        if found is not None:
            return found
    assert last is not None
    rid = f" (last request id {last.request_id})" if last.request_id else ""
    raise OperationError(f"{what} failed: Scaleway answered {last.status} to {last.method} "
                         f"{last.path} {retry.attempts} times and made nothing{rid}; "
                         f"retry later")


class Apis:
    """The APIs one job talks to, bound to one client, one call log and one retry policy."""

    def __init__(self, client: Client, recorder: CallRecorder | None = None,
                 retry: RetryPolicy = DEFAULT_RETRY, s3_concurrency: int = 16) -> None:
        self.client, self.recorder, self.retry = client, recorder, retry
        self.gauge = rate_gauge(client)
        self.block = _install(BlockV1API(client), recorder, retry, self.gauge)
        self.account = _install(AccountV3ProjectAPI(client), recorder, retry, self.gauge)
        self.instance = _install(InstanceV1API(client), recorder, retry, self.gauge)
        self.iam = _install(IamV1Alpha1API(client), recorder, retry, self.gauge)
        self._s3: dict[str, Any] = {}
        self._s3_lock = threading.Lock()
        self._s3_concurrency = s3_concurrency

    def bind(self, recorder: CallRecorder | None) -> "Apis":
        """The same client and retry policy, recording calls into ``recorder``."""
        if recorder is None or recorder is self.recorder:
            return self
        return Apis(self.client, recorder, self.retry, self._s3_concurrency)

    def s3(self, region: str) -> Any:
        """A boto3 S3 client for ``region`` (thread-safe; one per region, shared)."""
        with self._s3_lock:
            if region not in self._s3:
                self._s3[region] = make_s3_client(self.client, region, self.recorder,
                                                  self._s3_concurrency)
            return self._s3[region]

    def s3_for_zone(self, zone: str) -> Any:
        return self.s3(region_of(zone))


def make_s3_client(client: Client, region: str, recorder: CallRecorder | None = None,
                   concurrency: int = 16, attempts: int = 8) -> Any:
    """``attempts``: botocore's own tries per request (1: the caller retries, as the store does)."""
    s3 = boto_s3_client(s3_endpoint(region), region, client.access_key, client.secret_key,
                        concurrency=concurrency, attempts=attempts)
    if recorder is not None:
        _record_s3(s3, recorder)
    return s3


def _record_s3(s3: Any, recorder: CallRecorder) -> None:
    record = recording(recorder)
    assert record is not None

    def before_send(request: Any, **_: Any) -> None:
        request.context["strongroom_start"] = time.monotonic()
        request.context["strongroom_call"] = (request.method, urllib.parse.urlsplit(request.url).path)

    def received(context: dict[str, Any], response_dict: dict[str, Any] | None = None,
                 exception: BaseException | None = None, **_: Any) -> None:
        method, path = context.get("strongroom_call", ("?", "?"))
        start = context.get("strongroom_start", time.monotonic())
        status: int | str = (response_dict or {}).get("status_code") or (
            type(exception).__name__ if exception else "?")
        headers = (response_dict or {}).get("headers") or {}
        rid = next((headers[name] for name in ("x-amz-request-id", "x-amzn-requestid")
                    if headers.get(name)), None)
        record(method, path, status, (time.monotonic() - start) * 1000, rid)

    s3.meta.events.register("request-created.s3", before_send)
    s3.meta.events.register("response-received.s3", received)


def apis_for(client: Any, recorder: CallRecorder | None = None) -> Apis:
    """An :class:`Apis` from a bare SDK client or another Apis, recording into ``recorder``."""
    if isinstance(client, Apis):
        return client.bind(recorder)
    return Apis(client, recorder)


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one blocking SDK/boto3 call in a thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def describe(exc: BaseException, doing: str) -> OperationError:
    """An OperationError saying what we were doing and what Scaleway answered."""
    status = status_of(exc)
    hint = ""
    if status in (401, 403):
        hint = "; check the API key's permissions with `strongroom preflight`"
    elif isinstance(exc, (BotoCoreError,)):
        hint = "; check STRONGROOM_S3_ENDPOINT and the network"
    return OperationError(f"{doing} failed: {scw_message(exc)}{hint}")


def dump(obj: Any) -> str:
    return json.dumps(obj, default=str)
