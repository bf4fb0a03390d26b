"""One retry policy for every call that may be tried again, and one way to poll for a state.

Built on tenacity: exponential backoff with full jitter (AWS's "full jitter": a random delay
between 0 and ``min(cap, base * 2**attempt)``), a server's ``Retry-After`` honoured up to the cap,
a bounded number of attempts. Every retry loop in Strongroom goes through here, so none retries
at once and none forgets the jitter.
"""
from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to try again; small numbers in tests, patient in production.

    ``floor`` is the smallest delay between two attempts (0: pure full jitter). Looking for
    something that was just made wants a floor: an API may list it a moment late."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 20.0
    floor: float = 0.0

    def delay(self, attempt: int, retry_after: str | float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0 for the first)."""
        if retry_after not in (None, ""):
            try:
                return max(self.floor, min(float(retry_after), self.cap))  # type: ignore[arg-type]
            except ValueError:
                pass
        return max(self.floor, random.uniform(0, min(self.cap, self.base * 2 ** attempt)))

    def with_floor(self, floor: float) -> "RetryPolicy":
        return dataclasses.replace(self, floor=floor)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.delay(state.attempt_number - 1, getattr(exc, "retry_after", None))

    def retrying(self, retry_on: Callable[[BaseException], bool],
                 sleep: Callable[[float], None] = time.sleep) -> tenacity.Retrying:
        """A tenacity ``Retrying`` that retries exceptions for which ``retry_on`` is true and
        re-raises the last one when attempts run out. An exception may carry ``retry_after``."""
        return tenacity.Retrying(stop=tenacity.stop_after_attempt(self.attempts),
                                 wait=self._wait, sleep=sleep,
                                 retry=tenacity.retry_if_exception(retry_on), reraise=True)

    def call(self, fn: Callable[[], T], retry_on: Callable[[BaseException], bool]) -> T:
        """``fn()``, tried again on the exceptions ``retry_on`` accepts."""
        return self.retrying(retry_on)(fn)

    async def call_async(self, fn: Callable[[], Awaitable[T]],
                         retry_on: Callable[[BaseException], bool]) -> T:
        retrying = tenacity.AsyncRetrying(stop=tenacity.stop_after_attempt(self.attempts),
                                          wait=self._wait,
                                          retry=tenacity.retry_if_exception(retry_on),
                                          reraise=True)
        return await retrying(fn)


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class PollPolicy:
    """How to wait for a long transition (a snapshot being made, an export, an import): polls
    start fast and slow down, with jitter so many waiters do not poll in step."""

    first: float = 0.5
    most: float = 10.0
    factor: float = 1.5

    def delays(self) -> "PollDelays":
        return PollDelays(self)


class PollDelays:
    """The successive delays of one wait (an iterator that never ends)."""

    def __init__(self, policy: PollPolicy) -> None:
        self._policy, self._next = policy, policy.first

    def __iter__(self) -> "PollDelays":
        return self

    def __next__(self) -> float:
        delay = self._next
        self._next = min(self._next * self._policy.factor, self._policy.most)
        return delay * random.uniform(0.8, 1.2)


async def poll(fetch: Callable[[], Awaitable[T]], until: Callable[[T], bool], *,
               timeout: float, policy: PollPolicy = PollPolicy(),
               on_timeout: Callable[[T], BaseException]) -> T:
    """Call ``fetch`` until ``until(result)`` (it may raise to stop early), at most ``timeout``
    seconds; then raise ``on_timeout(last result)``."""
    start = time.monotonic()
    for delay in policy.delays():
        value = await fetch()
        if until(value):
            return value
        if time.monotonic() - start > timeout:
            raise on_timeout(value)
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # PollDelays never ends
