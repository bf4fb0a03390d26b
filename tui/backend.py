"""What the app asks of the engine, in one narrow place.

Screens never call the engine directly: they ask a :class:`Backend`. :class:`EngineBackend`
wires it to the real connector and store (the contracts in the brief); tests may hand the app
a backend of their own with fixed data for deterministic snapshots. Calls that block (SDK, boto3,
the store) are plain functions here and are always run from thread workers by the screens; the
flows are coroutines run by the App's :class:`engine.jobs.JobRunner`.
"""
from __future__ import annotations

import asyncio
import inspect
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.jobs import Reporter

REGIONS = ("fr-par", "nl-ams", "pl-waw")
ZONES = ("fr-par-1", "fr-par-2", "fr-par-3", "nl-ams-1", "nl-ams-2", "nl-ams-3",
         "pl-waw-1", "pl-waw-2", "pl-waw-3")


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


@dataclass
class RestoreRequest:
    snapshot_id: str
    project_id: str
    zone: str
    name: str
    size: int  # bytes
    iops: int  # 5000 or 15000


@dataclass
class Check:
    """One preflight line, whatever shape the connector returns."""
    name: str
    ok: bool
    message: str = ""
    status: str = ""  # the connector's word: OK | MISSING | UNVERIFIED

    @property
    def blocking(self) -> bool:
        """UNVERIFIED (could not tell) warns; only a known problem stops a restore."""
        return not self.ok and self.status.upper() != "UNVERIFIED"


@dataclass
class StoreStatus:
    url: str
    ok: bool
    message: str = ""
    snapshots: list[Any] = field(default_factory=list)


class Backend(Protocol):
    profile: str
    store_url: str
    organization: str

    def list_projects(self) -> list[Any]: ...
    def list_zones(self, project_id: str) -> list[str]: ...
    def list_volumes(self, project_id: str, zone: str) -> list[Any]: ...
    def store_status(self) -> StoreStatus: ...
    def bucket_for(self, zone: str) -> str: ...
    def preflight(self, project_id: str, zone: str) -> list[Check]: ...
    async def backup(self, reporter: Reporter, volume: Any) -> Any: ...
    async def restore(self, reporter: Reporter, request: RestoreRequest) -> Any: ...


def run_maybe_async(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call an engine function from a worker thread whether it is sync or a coroutine."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(aw: Any) -> Any:
    return await aw


def checks_from_report(report: Any) -> list[Check]:
    """Normalise a PreflightReport (``.checks`` of CheckResult) into :class:`Check` lines."""
    items = getattr(report, "checks", None)
    if items is None:
        items = report if isinstance(report, list) else []
    out = []
    for item in items:
        ok = getattr(item, "ok", None)
        if ok is None:
            ok = str(getattr(item, "status", "")).lower() in ("ok", "pass", "passed")
        message = " ".join(str(x) for x in (getattr(item, "message", "") or
                                             getattr(item, "detail", ""),
                                             getattr(item, "fix", "")) if x)
        out.append(Check(str(getattr(item, "name", item)), bool(ok), message,
                         str(getattr(item, "status", ""))))
    return out


class EngineBackend:
    """The real thing: the Scaleway connector and the store, per the contracts."""

    def __init__(self, *, store_url: str, passphrase: str | None, profile: str | None = None,
                 buckets: dict[str, str] | None = None, label: str = "") -> None:
        self.store_url = store_url
        self._scw_profile = profile
        self.profile = label or profile or os.environ.get("SCW_PROFILE") or "default"
        self.organization = os.environ.get("SCW_DEFAULT_ORGANIZATION_ID", "")
        self.buckets = dict(buckets or {})
        self._passphrase = passphrase
        self._store: Any = None
        self._store_lock = threading.Lock()
        self._client_obj: Any = None
        self._zones: dict[str, list[str]] = {}

    # -- Scaleway -------------------------------------------------------------------------
    def _client(self) -> Any:
        if self._client_obj is None:
            from engine.scaleway.config import scw_client
            self._client_obj = scw_client(self._scw_profile)
        return self._client_obj

    def list_projects(self) -> list[Any]:
        from engine.scaleway.inventory import list_projects
        projects = run_maybe_async(list_projects, self._client())
        if not self.organization and projects:
            self.organization = getattr(projects[0], "organization_id", "") or ""
        return projects

    def list_zones(self, project_id: str) -> list[str]:
        """Zones where the project has volumes (every zone asked at once)."""
        from engine.scaleway.inventory import list_inventory
        vols = run_maybe_async(list_inventory, self._client(), projects=[project_id])
        return sorted({v.zone for v in vols}, key=lambda z: ZONES.index(z) if z in ZONES else 99)

    def list_volumes(self, project_id: str, zone: str) -> list[Any]:
        from engine.scaleway.inventory import list_volumes
        return run_maybe_async(list_volumes, self._client(), project_id, zone,
                               self._snapshots_quietly())

    def _snapshots_quietly(self) -> list[Any]:
        status = self.store_status()
        return status.snapshots if status.ok else []

    def bucket_for(self, zone: str) -> str:
        region = region_of(zone)
        return self.buckets.get(region) or f"strongroom-staging-{region}"

    def preflight(self, project_id: str, zone: str) -> list[Check]:
        from engine.scaleway.preflight import preflight
        report = run_maybe_async(preflight, self._client(), zone=zone, project_id=project_id,
                                 bucket=self.bucket_for(zone))
        return checks_from_report(report)

    # -- store ----------------------------------------------------------------------------
    def store(self) -> Any:
        with self._store_lock:
            if self._store is None:
                from engine.store import Store
                if not self._passphrase:
                    from engine.errors import UsageError
                    raise UsageError("no passphrase: set STRONGROOM_PASSPHRASE and restart")
                self._store = Store.open(self.store_url, self._passphrase)
            return self._store

    def store_status(self) -> StoreStatus:
        try:
            return StoreStatus(self.store_url, True, "", list(self.store().snapshots()))
        except Exception as exc:  # shown in the UI as a one-line message
            return StoreStatus(self.store_url, False, str(exc) or type(exc).__name__)

    # -- flows ----------------------------------------------------------------------------
    async def backup(self, reporter: Reporter, volume: Any) -> Any:
        from engine.scaleway.flows import backup_volume
        store = await asyncio.to_thread(self.store)
        client = await asyncio.to_thread(self._client)
        return await backup_volume(reporter, store=store, client=client, volume_id=volume.id,
                                   zone=volume.zone, bucket=self.bucket_for(volume.zone))

    async def restore(self, reporter: Reporter, request: RestoreRequest) -> Any:
        from engine.scaleway.flows import restore_snapshot
        store = await asyncio.to_thread(self.store)
        client = await asyncio.to_thread(self._client)
        return await restore_snapshot(reporter, store=store, client=client,
                                      ref=request.snapshot_id, zone=request.zone,
                                      project_id=request.project_id, name=request.name,
                                      size=request.size, iops=request.iops,
                                      bucket=self.bucket_for(request.zone))

    def close(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            except Exception:
                pass
