"""What every request handler reaches: the state, the faults, the transition delays and the
data side (volume files, S3)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from engine.sandbox.faults import FaultDice, Faults
from engine.sandbox.state import State


@dataclass
class Delays:
    """Seconds each status transition takes (short by default so tests stay fast)."""

    create: float = 0.3      # volume / snapshot creating -> available
    update: float = 0.3      # volume updating -> available
    export: float = 0.3      # at least this long in `exporting`
    import_: float = 0.3     # at least this long in `creating` after an import
    server: float = 0.3

    @classmethod
    def scaled(cls, factor: float) -> "Delays":
        base = cls()
        return cls(*(getattr(base, f) * factor for f in base.__dataclass_fields__))


@dataclass
class World:
    state: State
    faults: Faults
    dice: FaultDice
    delays: Delays
    storage: Any                       # engine.sandbox.storage.Storage (volume bytes and S3)
    tasks: set[asyncio.Task] = field(default_factory=set)

    def spawn(self, coro: Any) -> None:
        """Run background work (an export, an import) and keep a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


# Typed keys for what the app and each request carry (aiohttp's recommended storage).
WORLD = web.AppKey("world", World)
GRANTED_SETS = web.RequestKey("permission_sets", set)
