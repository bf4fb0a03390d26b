"""What there is to back up: organization → projects → zones → volumes.

Each level has its own function so the TUI's tree can load lazily; :func:`list_inventory` walks
everything, each project × zone concurrently. Blocking SDK calls run in threads.

The zones are asked of the API (:func:`block_zones`: the Block volume types of each zone the
SDK or the zone table names); the table is used as is only when the API cannot tell. A volume
that cannot be backed up says why: a legacy Instance volume (also when the Block API shows a
migrated one, type ``b_ssd``), one too large to export (1 TB max), one busy.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from scaleway import ScalewayException

from engine.scaleway.api import Apis, apis_for, CallRecorder, describe, status_of
from engine.scaleway.config import ZONES, export_refusal

LEGACY_TYPES = {"b_ssd": "a legacy Instance block volume (b_ssd): migrate it to Block Storage "
                         "(SBS) first, e.g. `scw instance volume plan-migration`",
                "l_ssd": "a local Instance volume (l_ssd): it lives on the server's host and "
                         "has no SBS snapshot export; copy its data from inside the server",
                "scratch": "a scratch volume: its content is temporary by design"}
TEMP_TAG = "strongroom-temp"


@dataclass
class ProjectInfo:
    id: str
    name: str
    organization_id: str = ""
    description: str = ""


@dataclass
class VolumeInfo:
    id: str
    name: str
    zone: str
    project_id: str
    size: int
    type: str
    perf_iops: int | None
    status: str
    tags: list[str] = field(default_factory=list)
    server: str | None = None
    server_id: str | None = None
    backupable: bool = True
    reason: str = ""
    csi: bool = False
    last_backup: str | None = None
    backup_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _apis(client: Any, reporter: CallRecorder | None) -> Apis:
    return apis_for(client, reporter)


async def list_projects(client: Any, reporter: CallRecorder | None = None) -> list[ProjectInfo]:
    apis = _apis(client, reporter)
    try:
        projects = await asyncio.to_thread(
            apis.account.list_projects_all,
            organization_id=apis.client.default_organization_id or None)
    except ScalewayException as exc:
        raise describe(exc, "listing projects") from None
    return sorted((ProjectInfo(p.id, p.name, p.organization_id, p.description or "")
                   for p in projects), key=lambda p: p.name.lower())


async def list_volumes(client: Any, project_id: str, zone: str,
                       snapshots: Sequence[Any] | None = None,
                       reporter: CallRecorder | None = None) -> list[VolumeInfo]:
    """SBS volumes of one project in one zone, plus legacy Instance volumes (not backupable)."""
    apis = _apis(client, reporter)
    try:
        volumes = await asyncio.to_thread(apis.block.list_volumes_all, zone=zone,
                                          project_id=project_id, include_deleted=False)
    except ScalewayException as exc:
        if status_of(exc) in (404, 501):
            return []  # the zone is not served (by this endpoint): nothing to list there
        raise describe(exc, f"listing volumes in {zone}") from None
    servers, legacy = await asyncio.gather(_servers(apis, project_id, zone),
                                           _legacy_volumes(apis, project_id, zone))
    infos = [_from_sbs(v, zone, servers) for v in volumes]
    # A migrated legacy volume shows in both APIs, with one id: listed once.
    seen = {v.id for v in infos}
    infos += [_from_instance(v, zone, project_id, servers) for v in legacy if v.id not in seen]
    _add_backups(infos, snapshots or [])
    return sorted(infos, key=lambda v: (v.name.lower(), v.id))


async def list_inventory(client: Any, store: Any = None, *,
                         projects: Iterable[str] | None = None,
                         zones: Iterable[str] | None = None, concurrency: int = 8,
                         reporter: CallRecorder | None = None) -> list[VolumeInfo]:
    """Every volume of the organization (or of ``projects``), each project × zone in parallel;
    in every Block zone the API serves unless ``zones`` are given."""
    apis = _apis(client, reporter)
    project_ids = list(projects) if projects is not None else [
        p.id for p in await list_projects(apis)]
    zones = list(zones) if zones is not None else await block_zones(apis)
    snapshots = await asyncio.to_thread(store.snapshots) if store is not None else []
    sem = asyncio.Semaphore(concurrency)

    async def one(project_id: str, zone: str) -> list[VolumeInfo]:
        async with sem:
            return await list_volumes(apis, project_id, zone, snapshots)

    results = await asyncio.gather(*(one(p, z) for p in project_ids for z in zones))
    return [v for chunk in results for v in chunk]


ZONES_FOR = 3600.0      # seconds the zones found are trusted (per API endpoint and key)
_ZONES: dict[tuple[str, str], tuple[float, list[str]]] = {}
_ZONES_LOCK = threading.Lock()


def candidate_zones() -> list[str]:
    """The zones the zone table or the SDK's locality list names (table order first)."""
    from scaleway_core.bridge import ALL_ZONES

    return list(dict.fromkeys([*ZONES, *ALL_ZONES]))


async def block_zones(client: Any, reporter: CallRecorder | None = None,
                      fresh: bool = False) -> list[str]:
    """The zones the Block API serves, asked of the API (``ListVolumeTypes`` answers 200 in
    each), among :func:`candidate_zones`; a zone whose answer cannot tell (no right to read
    Block, a rate limit) is kept, as the table has it. Remembered for :data:`ZONES_FOR`."""
    apis = _apis(client, reporter)
    key = (str(apis.client.api_url), str(apis.client.access_key))
    with _ZONES_LOCK:
        known = _ZONES.get(key)
    if known is not None and not fresh and time.monotonic() - known[0] < ZONES_FOR:
        return list(known[1])

    async def served(zone: str) -> bool | None:
        try:
            await asyncio.to_thread(apis.block.list_volume_types, zone=zone, page_size=1)
        except ScalewayException as exc:
            if status_of(exc) in (400, 404, 501):
                return False           # not a Block zone (an unknown zone, an unserved one)
            return None
        return True

    candidates = candidate_zones()
    answers = await asyncio.gather(*(served(z) for z in candidates))
    zones = [z for z, ok in zip(candidates, answers) if ok is not False]
    if all(ok is not None for ok in answers):       # the API told: trust it for a while
        with _ZONES_LOCK:
            _ZONES[key] = (time.monotonic(), zones)
    return zones


async def _servers(apis: Apis, project_id: str, zone: str) -> dict[str, str]:
    try:
        servers = await asyncio.to_thread(apis.instance.list_servers_all, zone=zone,
                                          project=project_id)
    except ScalewayException:
        return {}  # attachment names are a nicety; the volume list stands without them
    return {s.id: s.name for s in servers}


async def _legacy_volumes(apis: Apis, project_id: str, zone: str) -> list[Any]:
    try:
        volumes = await asyncio.to_thread(apis.instance.list_volumes_all, zone=zone,
                                          project=project_id)
    except ScalewayException:
        return []
    return [v for v in volumes if str(v.volume_type) in LEGACY_TYPES]


def _from_sbs(v: Any, zone: str, servers: dict[str, str]) -> VolumeInfo:
    server_id = next((r.product_resource_id for r in (v.references or [])
                      if str(r.product_resource_type) == "instance_server"
                      and str(r.status) in ("attaching", "attached", "detaching")), None)
    status = str(v.status)
    kind = str(v.type_)
    legacy = kind in LEGACY_TYPES or str(getattr(v.specs, "class_", "") or "") == "bssd"
    info = VolumeInfo(id=v.id, name=v.name, zone=str(v.zone or zone), project_id=v.project_id,
                      size=int(v.size or 0), type=kind,
                      perf_iops=(getattr(v.specs, "perf_iops", None) or None) if v.specs
                      else None,
                      status=status, tags=list(v.tags or []), server_id=server_id,
                      server=servers.get(server_id) if server_id else None,
                      csi=v.name.startswith("pvc-"))
    too_large = export_refusal(info.size)
    if legacy:
        info.backupable = False
        info.reason = f"not backupable: {LEGACY_TYPES.get(kind, LEGACY_TYPES['b_ssd'])}"
    elif too_large:
        info.backupable, info.reason = False, f"not backupable: {too_large}"
    elif status not in ("available", "in_use"):
        info.backupable, info.reason = False, f"the volume is {status}; wait until it is " \
                                              f"available or in use"
    return info


def _from_instance(v: Any, zone: str, project_id: str, servers: dict[str, str]) -> VolumeInfo:
    server_id = v.server.id if getattr(v, "server", None) else None
    kind = str(v.volume_type)
    return VolumeInfo(id=v.id, name=v.name, zone=str(v.zone or zone),
                      project_id=v.project or project_id, size=int(v.size or 0), type=kind,
                      perf_iops=None, status=str(v.state), tags=list(v.tags or []),
                      server_id=server_id,
                      server=(servers.get(server_id) or getattr(v.server, "name", None))
                      if server_id else None,
                      backupable=False, reason=f"not backupable: {LEGACY_TYPES[kind]}")


def _add_backups(infos: list[VolumeInfo], snapshots: Sequence[Any]) -> None:
    by_volume: dict[str, list[str]] = {}
    for snap in snapshots:
        volume_id = (getattr(snap, "source", None) or {}).get("volume_id")
        if volume_id:
            by_volume.setdefault(volume_id, []).append(snap.time)
    for info in infos:
        times = by_volume.get(info.id, [])
        info.backup_count = len(times)
        info.last_backup = max(times) if times else None
