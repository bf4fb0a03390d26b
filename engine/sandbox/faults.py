"""Injected faults: what a flaky real Scaleway does to its clients, on demand.

The API server applies latency and 429/503 answers to every API call (never to the admin
endpoint); the Block export reads ``fail_export``; the S3 side reads ``drop_s3`` (bodies cut)
and the ``s3_*`` faults (429, 503, connections reset, writes failing for good, conditional
writes ignored) on every S3 request, the store's too.
``fail_after_create`` is the worst case for a client: the next creating calls (POSTs: snapshot,
volume, export, import) are carried out, then answered 503 as if the gateway had lost the answer.
``fail_updates`` answers every update (PATCH: a volume's or snapshot's name, tags, size) 503 and
changes nothing, as a gateway whose update path is down: a run's lease heartbeat cannot renew.

A 429 is answered as the real gateway does (recorded July 2026): an empty body, no
``Content-Type``, no ``Retry-After``, and ``X-Envoy-Ratelimited: true``. ``streak_429`` makes it
last: once one fires on a route (method and path pattern, per API key), the next
``streak_429 - 1`` calls of that route are refused too, so a client that retries sees several in
a row; the call after a streak goes through, as after a rate limit's window ("real-429 mode":
``REAL_429``, bursts of three).

``rate_limit`` is the gateway's own limit: at most that many calls per ``rate_window`` seconds per
API key, announced on every answer by ``X-Ratelimit-Limit`` (``"N, w=W"``, Envoy's form),
``X-Ratelimit-Remaining`` and ``X-Ratelimit-Reset`` (seconds until the window ends); past it,
the empty 429. 0: no limit and no such headers.
"""
from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

# The real-429 mode: several empty-body 429s in a row, on any route (lists, creates, waits).
REAL_429 = {"rate_429": 0.3, "streak_429": 3}


@dataclass
class Faults:
    latency_ms: int = 0
    rate_429: float = 0.0
    rate_503: float = 0.0
    fail_export: bool = False
    drop_s3: int = 0          # how many of the next S3 GET bodies are cut mid-way
    fail_after_create: int = 0  # how many of the next creating POSTs are done, then answer 503
    fail_updates: bool = False  # every PATCH answers 503, changing nothing
    streak_429: int = 1       # a 429 that fires refuses this many calls of its route in a row
    rate_limit: int = 1000    # calls per window per API key (0: unlimited, no headers)
    rate_window: float = 10.0  # seconds
    # Object Storage's own faults, on every S3 request (a store on S3 included): see
    # engine.sandbox.s3.RequestFaults
    s3_rate_429: float = 0.0
    s3_rate_503: float = 0.0
    s3_rate_drop: float = 0.0   # connection reset after the server did the work
    s3_fail_writes_after: int = -1  # then every S3 write answers 503 (-1: never)
    s3_ignore_conditional: bool = False  # If-None-Match / If-Match ignored on PUT
    s3_mib_per_s: float = 0.0  # each S3 answer's body sent at most this fast (0: no limit)

    def s3_request_faults(self) -> dict[str, Any]:
        """The S3 request faults, by the names engine.sandbox.s3.RequestFaults uses."""
        return {name.removeprefix("s3_"): getattr(self, name) for name in S3_REQUEST_FAULTS}

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial change; refuse unknown names or bad values (ValueError)."""
        known = {f.name: f.type for f in fields(self)}
        for name in changes:
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}")
        values = {name: _coerce(name, value) for name, value in changes.items()}
        for name, value in values.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


S3_REQUEST_FAULTS = ("s3_rate_429", "s3_rate_503", "s3_rate_drop", "s3_fail_writes_after",
                     "s3_ignore_conditional", "s3_mib_per_s")


def _coerce(name: str, value: Any) -> Any:
    if name == "s3_fail_writes_after":
        if int(value) < -1:
            raise ValueError(f"{name} must be >= -1 (-1: never)")
        return int(value)
    if name in ("rate_429", "rate_503", "s3_rate_429", "s3_rate_503", "s3_rate_drop"):
        rate = float(value)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
        return rate
    if name in ("fail_export", "fail_updates", "s3_ignore_conditional"):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if name == "s3_mib_per_s":
        speed = float(value)
        if speed < 0:
            raise ValueError(f"{name} must be >= 0 (0: no limit)")
        return speed
    if name == "rate_window":
        seconds = float(value)
        if not 0.0 < seconds <= 3600.0:
            raise ValueError("rate_window must be between 0 and 3600 seconds")
        return seconds
    number = int(value)
    if number < (1 if name == "streak_429" else 0):
        raise ValueError(f"{name} must be >= {1 if name == 'streak_429' else 0}")
    return number


class FaultDice:
    """Decides, per request, whether a fault fires (seeded, so a test run repeats)."""

    def __init__(self, faults: Faults, seed: int = 0) -> None:
        self.faults = faults
        self._seed = seed
        self._random = random.Random(seed)
        self._streaks: dict[str, int] = {}   # route -> 429s left; 0: the next one passes
        self._lock = threading.Lock()

    def restart(self) -> None:
        """Roll the seed's sequence from its start again: called whenever faults are set, so
        what fires depends on the requests made since, not on how many came before (polls
        whose number varies with the machine's load)."""
        with self._lock:
            self._random.seed(self._seed)
            self._streaks.clear()

    def http_error(self, route: str = "") -> int | None:
        """429 or 503 when one fires for this request (of ``route``), else None."""
        with self._lock:
            left = self._streaks.pop(route, None)
            if left is not None and left > 0:
                self._streaks[route] = left - 1
                return 429
            if left == 0:           # the streak is over: this call goes through
                return None
            roll = self._random.random()
            if roll < self.faults.rate_429:
                if self.faults.streak_429 > 1:
                    self._streaks[route] = self.faults.streak_429 - 1
                return 429
            if roll < self.faults.rate_429 + self.faults.rate_503:
                return 503
            return None

    def lose_answer(self) -> bool:
        """True (and one fewer left) when this done creating call must answer 503."""
        with self._lock:
            if self.faults.fail_after_create <= 0:
                return False
            self.faults.fail_after_create -= 1
            return True


@dataclass
class Quota:
    """What the rate limit says of one call: the X-Ratelimit-* headers, and whether it is over."""

    limit: int
    window: float
    remaining: int
    reset: float      # seconds until the window ends
    over: bool

    def headers(self) -> dict[str, str]:
        return {"X-Ratelimit-Limit": f"{self.limit}, w={self.window:g}",
                "X-Ratelimit-Remaining": str(self.remaining),
                "X-Ratelimit-Reset": str(max(1, math.ceil(self.reset)))}


class RateLimiter:
    """A fixed window per API key, as the gateway counts: ``rate_limit`` calls per window."""

    def __init__(self, faults: Faults, clock: Any = time.monotonic) -> None:
        self.faults = faults
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}   # key -> (window start, calls)
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Every key starts a new window (when the limits are changed)."""
        with self._lock:
            self._windows.clear()

    def take(self, key: str) -> Quota | None:
        """Count one call of ``key``; None when there is no limit."""
        limit, window = self.faults.rate_limit, self.faults.rate_window
        if limit <= 0:
            return None
        now = self._clock()
        with self._lock:
            start, used = self._windows.get(key, (now, 0))
            if now - start >= window:
                start, used = now, 0
            used += 1
            self._windows[key] = (start, used)
        return Quota(limit, window, max(0, limit - used), start + window - now, used > limit)
