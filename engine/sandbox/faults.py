"""Injected faults: what a flaky real Scaleway does to its clients, on demand.

The API server applies latency and 429/503 answers to every API call (never to the admin
endpoint); the Block export reads ``fail_export``; the S3 side reads ``drop_s3``.
``fail_after_create`` is the worst case for a client: the next creating calls (POSTs: snapshot,
volume, export, import) are carried out, then answered 503 as if the gateway had lost the answer.
``fail_updates`` answers every update (PATCH: a volume's or snapshot's name, tags, size) 503 and
changes nothing, as a gateway whose update path is down: a run's lease heartbeat cannot renew.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Faults:
    latency_ms: int = 0
    rate_429: float = 0.0
    rate_503: float = 0.0
    fail_export: bool = False
    drop_s3: int = 0          # how many of the next S3 GET bodies are cut mid-way
    fail_after_create: int = 0  # how many of the next creating POSTs are done, then answer 503
    fail_updates: bool = False  # every PATCH answers 503, changing nothing

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial change; refuse unknown names or bad values (ValueError)."""
        known = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}")
            setattr(self, name, _coerce(name, value))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(name: str, value: Any) -> Any:
    if name in ("rate_429", "rate_503"):
        rate = float(value)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
        return rate
    if name in ("fail_export", "fail_updates"):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    number = int(value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0")
    return number


class FaultDice:
    """Decides, per request, whether a fault fires (seeded, so a test run repeats)."""

    def __init__(self, faults: Faults, seed: int = 0) -> None:
        self.faults = faults
        self._seed = seed
        self._random = random.Random(seed)

    def restart(self) -> None:
        """Roll the seed's sequence from its start again: called whenever faults are set, so
        what fires depends on the requests made since, not on how many came before (polls
        whose number varies with the machine's load)."""
        self._random.seed(self._seed)

    def http_error(self) -> int | None:
        """429 or 503 when one fires for this request, else None."""
        roll = self._random.random()
        if roll < self.faults.rate_429:
            return 429
        if roll < self.faults.rate_429 + self.faults.rate_503:
            return 503
        return None

    def lose_answer(self) -> bool:
        """True (and one fewer left) when this done creating call must answer 503."""
        if self.faults.fail_after_create <= 0:
            return False
        self.faults.fail_after_create -= 1
        return True
