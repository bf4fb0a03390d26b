"""A local Scaleway for the demo and the tests: Block, Account, Instance and IAM APIs over HTTP
on 127.0.0.1, plus a real S3 server process (moto), so the real ``scaleway`` SDK and boto3 work
against it unchanged.

    with Sandbox(state_dir, profile="small") as sb:
        os.environ.update(sb.env)
        ...

- API keys (``sb.keys``): "full" (Block, Object Storage), "readonly" (reads only: S3 too),
  "nobucket" (no Object Storage: exports refused, S3 answers AccessDenied), "noblock" (no Block
  Storage: every Block call answers 403 permissions_denied), "user" (a person's key, no
  application: rights through its own policy and its group's; it may also attach volumes).
- Faults: ``sb.faults(latency_ms=…, rate_429=…, rate_503=…, fail_export=…, drop_s3=…,
  fail_after_create=…, fail_updates=…, streak_429=…, rate_limit=…, rate_window=…)`` (the next N
  creating POSTs are done, then answered 503; every PATCH answered 503; 429s as the real
  gateway sends them, ``streak_429`` in a row; the per-key rate limit and its X-Ratelimit-*
  headers), or ``GET``/``POST`` a JSON object on ``{api_url}/_sandbox/faults`` (only the names
  sent change). The real-429 mode is ``faults.REAL_429``.
- Timing: ``delays=Delays.realistic_timing(scale)`` (or ``sb.set_delays(...)`` while running):
  the recorded real durations, growing with sizes, times ``scale``; the default is 0.3 s each.
- State: ``state_dir/state.json`` plus sparse ``volumes/<id>.raw`` and ``snapshots/<id>.raw``
  files and the saved staging objects; a sandbox started on the same folder finds them again.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.sandbox import seed as seeding
from engine.sandbox.faults import REAL_429, FaultDice, Faults
from engine.sandbox.state import State
from engine.sandbox.world import Delays, World

__all__ = ["Sandbox", "Delays", "Faults", "REAL_429"]

PROFILES = ("small", "demo")
log = logging.getLogger(__name__)


class Sandbox:
    """The sandbox running in background threads; a context manager."""

    def __init__(self, state_dir: Path, port: int = 0, seed: int = 0, profile: str = "demo",
                 delays: Delays | None = None, faults: dict[str, Any] | None = None,
                 s3_port: int = 0) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown sandbox profile {profile!r}; use one of {PROFILES}")
        self.state_dir = Path(state_dir)
        self.port = port
        self.seed = seed
        self.profile = profile
        self._faults = Faults()
        if faults:
            self._faults.update(faults)
        self._delays = delays or Delays()
        self._s3_port = s3_port
        self._world: World | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- life -------------------------------------------------------------------------------
    def start(self) -> "Sandbox":
        from engine.sandbox.storage import Storage

        state = State(self.state_dir)
        fresh = not state.exists()
        if fresh:
            # saved once the volume files exist, so a failed first start is redone whole
            state.init(seeding.build(self.seed) | {"profile": self.profile}, save=False)
        else:
            state.load()
            self.seed, self.profile = state.doc["seed"], state.doc.get("profile", self.profile)
        storage = Storage(self.state_dir, self.seed, _s3_authority(state), port=self._s3_port)
        # Volume contents build while the S3 process starts: both take seconds.
        with ThreadPoolExecutor(1, thread_name_prefix="sandbox-fill") as pool:
            filled = pool.submit(self._fill_volumes, state, storage) if fresh else None
            storage.start()
            try:
                if filled is not None:
                    filled.result()
                    state.save()
            except BaseException:
                storage.stop()
                raise
        try:
            self._world = World(state=state, faults=self._faults,
                                dice=FaultDice(self._faults, self.seed), delays=self._delays,
                                storage=storage)
            storage.set_drop(self._faults.drop_s3)
            storage.set_request_faults(self._faults.s3_request_faults())
            self._serve()
        except BaseException:
            storage.stop()
            raise
        return self

    def _fill_volumes(self, state: State, storage: Any) -> None:
        storage.fill_volumes(list(state.coll("volumes").values()), self.state_dir, self.seed,
                             self.profile)
        from engine.sandbox.state import make_sparse, sparse_copy

        for snapshot in state.coll("snapshots").values():
            source = snapshot.get("_from_volume")
            if source:
                sparse_copy(state.volume_path(source), state.snapshot_path(snapshot["id"]))
            elif snapshot.get("_empty"):
                make_sparse(state.snapshot_path(snapshot["id"]), snapshot["size"])

    def _serve(self) -> None:
        from engine.sandbox.server import build_app

        assert self._world is not None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox-api",
                                        daemon=True)
        self._thread.start()
        app = build_app(self._world)

        async def serve() -> int:
            # access_log=None: nothing about requests (or their tokens) is written anywhere
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            await site.start()
            return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        self.port = asyncio.run_coroutine_threadsafe(serve(), self._loop).result(30)

    def stop(self, save: bool = True) -> None:
        """Stop serving, let running exports end as failed, save state and S3 objects (not
        the objects unless ``save``: a throwaway sandbox's folder is about to go)."""
        if self._loop is not None and self._runner is not None:
            async def shutdown() -> None:
                assert self._world is not None and self._runner is not None
                for task in list(self._world.tasks):
                    task.cancel()
                await self._runner.cleanup()

            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join(10)
            self._loop.close()
            self._loop = self._runner = None
        if self._world is not None:
            self._world.state.load()     # settles exports and imports cut by the stop
            try:
                self._world.storage.stop(save)
            except Exception as exc:  # the S3 process died first: only its objects are lost
                log.warning("sandbox S3 stopped badly (staging objects not saved): %s",
                            type(exc).__name__)
            self._world = None

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need ------------------------------------------------------------------
    @property
    def world(self) -> World:
        if self._world is None:
            raise RuntimeError("the sandbox is not running")
        return self._world

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def keys(self) -> dict[str, tuple[str, str]]:
        """API keys by role: full, readonly, nobucket (no Object Storage), noblock."""
        return {key["_role"]: (key["access_key"], key["secret_key"])
                for key in self.world.state.coll("api_keys").values() if key.get("_role")}

    @property
    def organization_id(self) -> str:
        return self.world.state.organization_id

    @property
    def buckets(self) -> dict[str, str]:
        return self.world.storage.buckets

    @property
    def env(self) -> dict[str, str]:
        access, secret = self.keys["full"]
        return {"SCW_API_URL": self.api_url, "SCW_ACCESS_KEY": access, "SCW_SECRET_KEY": secret,
                "SCW_DEFAULT_ORGANIZATION_ID": self.organization_id,
                "SCW_DEFAULT_PROJECT_ID": self.organization_id,  # the default project's id
                "SCW_DEFAULT_REGION": "fr-par", "SCW_DEFAULT_ZONE": "fr-par-1",
                "STRONGROOM_S3_ENDPOINT": self.world.storage.endpoint}

    def faults(self, latency_ms: int = 0, rate_429: float = 0.0, rate_503: float = 0.0,
               fail_export: bool = False, drop_s3: int = 0, fail_after_create: int = 0,
               fail_updates: bool = False, streak_429: int = 1, rate_limit: int | None = None,
               rate_window: float | None = None, s3_rate_429: float = 0.0,
               s3_rate_503: float = 0.0, s3_rate_drop: float = 0.0,
               s3_fail_writes_after: int = -1, s3_ignore_conditional: bool = False,
               s3_mib_per_s: float = 0.0) -> None:
        """Set every fault at once (call with no argument to clear them; the rate limit goes
        back to its default). ``s3_*``: on every S3 request (see engine.sandbox.s3)."""
        default = Faults()
        self.world.faults.update({"latency_ms": latency_ms, "rate_429": rate_429,
                                  "rate_503": rate_503, "fail_export": fail_export,
                                  "drop_s3": drop_s3, "fail_after_create": fail_after_create,
                                  "fail_updates": fail_updates, "streak_429": streak_429,
                                  "rate_limit": default.rate_limit if rate_limit is None
                                  else rate_limit,
                                  "rate_window": default.rate_window if rate_window is None
                                  else rate_window,
                                  "s3_rate_429": s3_rate_429, "s3_rate_503": s3_rate_503,
                                  "s3_rate_drop": s3_rate_drop,
                                  "s3_fail_writes_after": s3_fail_writes_after,
                                  "s3_ignore_conditional": s3_ignore_conditional,
                                  "s3_mib_per_s": s3_mib_per_s})
        self.world.dice.restart()
        self.world.limiter.reset()
        self.world.storage.set_drop(drop_s3)
        self.world.storage.set_request_faults(self.world.faults.s3_request_faults())

    def set_delays(self, delays: Delays) -> Delays:
        """Change how long transitions take from now on; returns the delays it replaces."""
        before, self.world.delays = self.world.delays, delays
        return before

    def volume_path(self, volume_id: str) -> Path:
        return self.world.state.volume_path(volume_id)

    def snapshot_path(self, snapshot_id: str) -> Path:
        return self.world.state.snapshot_path(snapshot_id)


def _s3_authority(state: State) -> Any:
    """What S3 checks each request against, asked of the IAM state at each request (as the real
    service follows IAM changes): the key's secret, and whether its permission sets let it read
    or write objects. An unknown key gets None."""
    from engine.sandbox import iam
    from engine.sandbox.s3 import KeyGrant

    def grant(access_key: str) -> KeyGrant | None:
        key = state.coll("api_keys").get(access_key)
        if key is None:
            return None
        sets = iam.permission_sets(state, key)
        return KeyGrant(secret=key["secret_key"],
                        read=iam.allowed(sets, "object_storage", "read"),
                        write=iam.allowed(sets, "object_storage", "write"))

    return grant
