"""What every request handler reaches: the state, the faults, the transition delays and the
data side (volume files, S3)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, fields
from typing import Any

from aiohttp import web

from engine.sandbox.faults import FaultDice, Faults, RateLimiter
from engine.sandbox.state import State

GB = 1_000_000_000

# Recorded durations on the real API, in seconds at scale 1, for a size in GB: volume creating
# 0-6 s, snapshot creating up to 87 s, export 5-83 s and import 108-212 s for small volumes
# (up to ~50 GB); exports and imports of larger ones take longer still.
_REAL: dict[str, tuple[float, float, float | None]] = {
    # kind: (fixed part, per GB, upper bound)
    "volume": (1.0, 0.1, 6.0),
    "snapshot": (8.0, 1.6, 87.0),
    "update": (2.0, 0.05, 10.0),
    "export": (5.0, 1.56, None),
    "import": (108.0, 2.08, None),
    "attach": (3.0, 0.0, None),
    "detach": (3.0, 0.0, None),
    "server": (5.0, 0.0, None),
}
_FIXED = {"volume": "create", "snapshot": "create", "update": "update", "export": "export",
          "import": "import_", "attach": "update", "detach": "update", "server": "server"}


@dataclass
class Delays:
    """Seconds each status transition takes (short by default so tests stay fast).

    ``realistic`` > 0 switches to the recorded real durations, which grow with the size of the
    volume or snapshot, multiplied by ``realistic`` (1: as slow as Scaleway; 0.05: twenty times
    faster, for a test). See :meth:`realistic_timing`."""

    create: float = 0.3      # volume / snapshot creating -> available
    update: float = 0.3      # volume updating -> available
    export: float = 0.3      # at least this long in `exporting`
    import_: float = 0.3     # at least this long in `creating` after an import
    server: float = 0.3
    realistic: float = 0.0   # 0: the fixed delays above; > 0: recorded durations × this

    @classmethod
    def scaled(cls, factor: float) -> "Delays":
        base = cls()
        return cls(*(getattr(base, f.name) * factor for f in fields(base)
                     if f.name != "realistic"))

    @classmethod
    def realistic_timing(cls, scale: float = 1.0) -> "Delays":
        """The recorded real durations, by size, times ``scale``."""
        if not 0 < scale <= 10:
            raise ValueError("the time scale must be above 0 and at most 10")
        return cls(realistic=scale)

    def seconds(self, kind: str, size: int = 0) -> float:
        """How long a ``kind`` transition (volume, snapshot, update, export, import, attach,
        detach, server) of an object of ``size`` bytes takes."""
        if self.realistic <= 0:
            return float(getattr(self, _FIXED[kind]))
        fixed, per_gb, most = _REAL[kind]
        seconds = fixed + per_gb * size / GB
        if most is not None:
            seconds = min(seconds, most)
        return seconds * self.realistic


@dataclass
class World:
    state: State
    faults: Faults
    dice: FaultDice
    delays: Delays
    storage: Any                       # engine.sandbox.storage.Storage (volume bytes and S3)
    tasks: set[asyncio.Task] = field(default_factory=set)
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.faults)

    def spawn(self, coro: Any) -> None:
        """Run background work (an export, an import) and keep a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


# Typed keys for what the app and each request carry (aiohttp's recommended storage).
WORLD = web.AppKey("world", World)
GRANTED_SETS = web.RequestKey("permission_sets", set)
CALLER = web.RequestKey("caller", dict)      # the API key that signed the request
