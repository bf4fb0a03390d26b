"""The two flows (DESIGN.md): back up an SBS volume into the store, restore a store snapshot into
a new SBS volume. Both are coroutines driven by an ``engine.jobs.Reporter``; blocking SDK, boto3
and store calls run in threads. Cancelled or failed, a flow removes what it created, then lets the
error through. Temporaries carry markers (tag ``strongroom-temp`` + job id, key prefix
``strongroom-tmp/``) so a later run can find and remove what a crashed one left.

Every creating call (snapshot, export, import, volume) goes through ``create_once``: when its
answer is lost (5xx, cut connection), the same markers find what it made, which is adopted
rather than made twice.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from scaleway import ScalewayException
from scaleway.block.v1 import CreateVolumeRequestFromSnapshot

from engine.errors import OperationError, UsageError
from engine.scaleway.api import (Apis, apis_for, create_once, describe, is_not_found,
                                 scw_message, status_of)
from engine.scaleway.config import region_of, s3_endpoint
from engine.settings import Settings, load_settings
from engine.scaleway.inventory import TEMP_TAG
from engine.scaleway.s3stream import MiB, MultipartWriter, RangedReader, StreamReader

T = TypeVar("T")
TEMP_PREFIX = "strongroom-tmp/"
IOPS_TYPES = {5000: "sbs_5k", 15000: "sbs_15k"}
GB = 1000 ** 3  # Scaleway sizes volumes in decimal gigabytes

# Temporaries of flows running in this process: never "leftovers", whatever their age.
_ACTIVE_SNAPSHOTS: set[str] = set()
_ACTIVE_KEYS: set[str] = set()


@dataclass
class Timeouts:
    """How long to wait for Scaleway's transitions (imports of big images take many minutes)."""

    snapshot: float = 3600.0
    export: float = 6 * 3600.0
    import_: float = 6 * 3600.0
    volume: float = 3600.0
    poll_min: float = 0.5
    poll_max: float = 10.0


@dataclass
class BackupOutcome:
    volume_id: str
    volume_name: str
    zone: str
    snapshot: str  # the store snapshot id
    bytes: int
    stored_bytes: int
    seconds: float
    scw_snapshot_id: str
    resumed: bool = False
    kept: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RestoreOutcome:
    volume_id: str
    name: str
    zone: str
    project_id: str
    size: int
    type: str
    snapshot_id: str  # the SBS snapshot the volume was made from
    store_snapshot: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _NullReporter:
    def phase(self, name: str, total: int = 0, message: str = "") -> None: ...
    def progress(self, done: int, total: int | None = None, message: str | None = None,
                 **extra: Any) -> None: ...
    def call(self, method: str, path: str, status: int | str, ms: float) -> None: ...


@dataclass
class _Temps:
    """What this run created and must remove."""

    zone: str
    bucket: str
    s3: Any
    snapshot_id: str | None = None
    key: str | None = None
    volume_id: str | None = None  # a restore's half-made volume

    def track(self) -> None:
        if self.snapshot_id:
            _ACTIVE_SNAPSHOTS.add(self.snapshot_id)
        if self.key:
            _ACTIVE_KEYS.add(self.key)

    def untrack(self) -> None:
        _ACTIVE_SNAPSHOTS.discard(self.snapshot_id or "")
        _ACTIVE_KEYS.discard(self.key or "")


def temp_tags(job: str) -> list[str]:
    return [TEMP_TAG, f"strongroom-job={job}"]


# ---------------------------------------------------------------------------------------------
# backup

async def backup_volume(reporter: Any, *, store: Any, client: Any, volume_id: str, zone: str,
                        bucket: str | None = None, keep: bool | None = None,
                        settings: Settings | None = None, timeouts: Timeouts | None = None,
                        concurrency: int | None = None, part_size: int = 8 * MiB,
                        job_id: str | None = None,
                        leftovers_min_age: float = 3600.0) -> BackupOutcome:
    """Snapshot → export → stream into the store → commit → clean up.

    ``concurrency``: ranged GETs in flight during the transfer. By default 8 on Scaleway's own
    endpoints, and 1 (one streamed GET) elsewhere: simple S3 servers such as moto read the whole
    object for every ranged GET, which makes many ranges of a big object very slow."""
    reporter = reporter or _NullReporter()
    settings = settings or load_settings()
    t = timeouts or Timeouts()
    apis = apis_for(client, None if isinstance(reporter, _NullReporter) else reporter)
    region = region_of(zone)
    bucket = bucket or settings.bucket_for(region)
    keep = settings.keep_temporaries if keep is None else keep
    if concurrency is None:
        concurrency = 8 if s3_endpoint(region).endswith(".scw.cloud") else 1
    job = job_id or uuid.uuid4().hex[:12]
    temps = _Temps(zone, bucket, apis.s3(region))
    cancel = threading.Event()
    started = time.monotonic()
    try:
        reporter.phase("snapshot", message=f"snapshot of {volume_id}")
        await check_bucket(apis, bucket, region)
        vol = await _get_volume(apis, zone, volume_id)
        resumed = await _find_resumable(apis, temps, vol, t)
        with contextlib.suppress(OperationError):  # tidying up after others is best effort
            await cleanup_leftovers(apis, zone, bucket, min_age=leftovers_min_age,
                                    volume_id=vol.id, keep_keys={temps.key or ""},
                                    keep_snapshots={temps.snapshot_id or ""}, timeouts=t)
        if resumed:
            scw_snapshot_id = temps.key.rsplit("/", 1)[-1].removesuffix(".qcow2")  # type: ignore[union-attr]
            reporter.phase("export", message=f"reusing s3://{bucket}/{temps.key}")
        else:
            scw_snapshot_id = await _snapshot_and_export(reporter, apis, temps, vol, job, t)
        size = await _object_size(apis, temps)
        reporter.phase("transfer", total=size, message=f"s3://{bucket}/{temps.key}")
        on_eof = lambda: reporter.phase("commit", total=size)  # noqa: E731
        # concurrency 1: one streamed GET (for S3 servers whose ranged GETs are costly)
        reader: Any = (StreamReader(temps.s3, bucket, temps.key or "", size, cancel=cancel,
                                    on_eof=on_eof) if concurrency <= 1 else
                       RangedReader(temps.s3, bucket, temps.key or "", size,
                                    part_size=part_size, concurrency=concurrency,
                                    cancel=cancel, on_eof=on_eof))
        info = _source_info(vol, scw_snapshot_id, settings, bucket)
        tags = _store_tags(vol, settings)

        last_stored = 0  # new bytes the store wrote so far: the jobs panel's live dedup ratio

        def stored(nbytes: int) -> None:
            nonlocal last_stored
            last_stored = nbytes

        def run_backup() -> Any:
            with reader:
                return store.backup(reader, name=vol.name, tags=tags, source_info=info,
                                    size_hint=size, cancel=cancel,
                                    progress=lambda done, total: reporter.progress(
                                        done, size, stored_bytes=last_stored),
                                    stored_progress=stored)

        result = await _blocking(run_backup, cancel)
        reporter.phase("cleanup")
        outcome = BackupOutcome(
            volume_id=vol.id, volume_name=vol.name, zone=zone, snapshot=result.snapshot.id,
            bytes=result.bytes, stored_bytes=result.stored_bytes,
            seconds=round(time.monotonic() - started, 3), scw_snapshot_id=scw_snapshot_id,
            resumed=resumed)
        if keep:
            outcome.kept = [f"s3://{bucket}/{temps.key}"] + (
                [f"snapshot {temps.snapshot_id}"] if temps.snapshot_id else [])
            temps.untrack()
        else:
            outcome.warnings = await _remove_temps(apis, temps, t)
        return outcome
    except BaseException:
        cancel.set()
        if not keep:
            with contextlib.suppress(Exception):
                await asyncio.shield(_remove_temps(apis, temps, t))
        temps.untrack()
        raise


async def _snapshot_and_export(reporter: Any, apis: Apis, temps: _Temps, vol: Any, job: str,
                               t: Timeouts) -> str:
    def made(snap: Any) -> None:
        temps.snapshot_id = snap.id
        temps.track()

    name = f"strongroom-{job}-{vol.name}"[:255]

    def create() -> Any:
        return apis.block.create_snapshot(volume_id=vol.id, public=False, zone=temps.zone,
                                          name=name, project_id=vol.project_id,
                                          tags=temp_tags(job))

    def find() -> Any:
        return _find_temp_snapshot(apis, temps.zone, vol.project_id, job, name, vol.id)

    try:
        snap = await _settled(lambda: create_once(create, find, apis.retry,
                                                  "creating a snapshot"), made)
    except ScalewayException as exc:
        raise _volume_error(exc, vol.id, temps.zone, "creating a snapshot") from None
    await _wait_snapshot(apis, temps.zone, snap.id, {"available"}, {"creating"}, t.snapshot,
                         "the snapshot", t)
    temps.key = f"{TEMP_PREFIX}{vol.id}/{snap.id}.qcow2"
    temps.track()
    reporter.phase("export", message=f"to s3://{temps.bucket}/{temps.key}")

    def export() -> Any:
        return apis.block.export_snapshot_to_object_storage(
            snapshot_id=snap.id, bucket=temps.bucket, key=temps.key or "", zone=temps.zone)

    try:
        await _settled(lambda: create_once(export, lambda: _find_export(apis, temps, snap.id),
                                           apis.retry, f"exporting snapshot {snap.id}"))
    except ScalewayException as exc:
        raise describe(exc, f"exporting snapshot {snap.id} to bucket {temps.bucket}") from None
    await _wait_snapshot(apis, temps.zone, snap.id, {"available"}, {"exporting"}, t.export,
                         "the export", t)
    return str(snap.id)


def _find_temp_snapshot(apis: Apis, zone: str, project_id: str, job: str, name: str,
                        volume_id: str | None) -> Any:
    """The snapshot this job asked for (its job tag and name are unique), if Scaleway made it:
    ``volume_id`` for a snapshot of that volume, None for an import. Blocking."""
    job_tag = temp_tags(job)[1]
    snaps = apis.block.list_snapshots_all(zone=zone, project_id=project_id, volume_id=volume_id,
                                          tags=[job_tag], include_deleted=False)
    for snap in snaps:
        parent = getattr(snap.parent_volume, "id", None)
        if job_tag in (snap.tags or []) and snap.name == name and parent == volume_id:
            return snap
    return None


def _find_export(apis: Apis, temps: _Temps, snapshot_id: str) -> Any:
    """The snapshot, if the export asked for has started (``exporting``) or already written
    its object; None if it never began. Blocking."""
    snap = apis.block.get_snapshot(snapshot_id=snapshot_id, zone=temps.zone)
    if str(snap.status) != "available":
        return snap
    try:
        temps.s3.head_object(Bucket=temps.bucket, Key=temps.key)
    except ClientError as exc:
        if is_not_found(exc) or exc.response.get("Error", {}).get("Code") == "404":
            return None
        raise describe(exc, f"reading s3://{temps.bucket}/{temps.key}") from None
    return snap


def _find_restored_volume(apis: Apis, zone: str, project_id: str, name: str,
                          snapshot_id: str) -> Any:
    """The volume this restore asked for: its name was free and its parent is this job's own
    imported snapshot. Blocking."""
    for vol in apis.block.list_volumes_all(zone=zone, project_id=project_id, name=name,
                                           include_deleted=False):
        if vol.name == name and vol.parent_snapshot_id == snapshot_id:
            return vol
    return None


async def _object_size(apis: Apis, temps: _Temps) -> int:
    """The exported object; its absence after the export means the export failed."""
    for attempt in range(4):
        try:
            head = await asyncio.to_thread(temps.s3.head_object, Bucket=temps.bucket,
                                           Key=temps.key)
            return int(head["ContentLength"])
        except ClientError as exc:
            if not is_not_found(exc) and exc.response.get("Error", {}).get("Code") != "404":
                raise describe(exc, f"reading s3://{temps.bucket}/{temps.key}") from None
        await asyncio.sleep(0.1 * 2 ** attempt)
    raise OperationError(f"the export of snapshot {temps.snapshot_id} failed: no object "
                         f"s3://{temps.bucket}/{temps.key} appeared; check that the bucket is "
                         f"in {region_of(temps.zone)} and in the volume's project, then retry")


async def _find_resumable(apis: Apis, temps: _Temps, vol: Any, t: Timeouts) -> bool:
    """A crashed run's export of this volume, still in the bucket, is reused."""
    prefix = f"{TEMP_PREFIX}{vol.id}/"
    try:
        listing = await asyncio.to_thread(temps.s3.list_objects_v2, Bucket=temps.bucket,
                                          Prefix=prefix)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise OperationError(f"the staging bucket {temps.bucket} does not exist: create it "
                                 f"in {region_of(temps.zone)} or pass --bucket") from None
        raise describe(exc, f"listing bucket {temps.bucket}") from None
    objects = sorted(listing.get("Contents", []), key=lambda o: o["LastModified"], reverse=True)
    for obj in objects:
        key = obj["Key"]
        if key in _ACTIVE_KEYS or not obj.get("Size"):
            continue
        snap_id = key[len(prefix):].removesuffix(".qcow2")
        try:
            snap = await asyncio.to_thread(apis.block.get_snapshot, snapshot_id=snap_id,
                                           zone=temps.zone)
        except ScalewayException as exc:
            if not is_not_found(exc):
                raise describe(exc, f"reading snapshot {snap_id}") from None
            snap = None
        if snap is not None and str(snap.status) == "exporting":
            await _wait_snapshot(apis, temps.zone, snap_id, {"available"}, {"exporting"},
                                 t.export, "the earlier export", t)
        elif snap is not None and str(snap.status) != "available":
            continue
        temps.key = key
        temps.snapshot_id = snap_id if snap is not None else None
        temps.track()
        return True
    return False


def _source_info(vol: Any, scw_snapshot_id: str, settings: Settings, bucket: str) -> dict:
    return {"volume_id": vol.id, "volume_name": vol.name, "size": int(vol.size or 0),
            "type": str(vol.type_),
            "perf_iops": getattr(vol.specs, "perf_iops", None) if vol.specs else None,
            "project_id": vol.project_id, "zone": str(vol.zone), "tags": list(vol.tags or []),
            "environment": settings.environment, "data_class": settings.data_class,
            "scw_snapshot_id": scw_snapshot_id, "bucket": bucket, "format": "qcow2"}


def _store_tags(vol: Any, settings: Settings) -> dict[str, str]:
    tags: dict[str, str] = {}
    for tag in vol.tags or []:
        key, sep, value = str(tag).partition("=")
        if not sep:
            key, sep, value = str(tag).partition(":")
        tags[key] = value
    tags.update({"volume": vol.name, "zone": str(vol.zone)})
    if settings.environment:
        tags["environment"] = settings.environment
    if settings.data_class:
        tags["data_class"] = settings.data_class
    return tags


# ---------------------------------------------------------------------------------------------
# restore

async def restore_snapshot(reporter: Any, *, store: Any, client: Any, ref: str,
                           zone: str | None = None, project_id: str | None = None,
                           name: str | None = None, size: int | None = None,
                           iops: int | None = None, bucket: str | None = None,
                           settings: Settings | None = None, timeouts: Timeouts | None = None,
                           concurrency: int = 4, job_id: str | None = None) -> RestoreOutcome:
    """Store → multipart upload → import → new volume → clean up. ``size`` in bytes."""
    reporter = reporter or _NullReporter()
    settings = settings or load_settings()
    t = timeouts or Timeouts()
    apis = apis_for(client, None if isinstance(reporter, _NullReporter) else reporter)
    info = await asyncio.to_thread(store.resolve, ref)
    src = dict(info.source or {})
    zone = zone or src.get("zone") or apis.client.default_zone
    region = region_of(zone)
    bucket = bucket or settings.bucket_for(region)
    project = project_id or src.get("project_id") or apis.client.default_project_id
    if not project:
        raise UsageError("no project to restore into: pass --project")
    orig_size = int(src.get("size") or 0)
    if size is not None and size < orig_size:
        raise UsageError(f"the volume was {orig_size / GB:g} GB; a restored volume can only be "
                         f"as large or larger (volumes only grow)")
    target_size = max(size or 0, orig_size)
    iops = int(iops or src.get("perf_iops") or 5000)
    if iops not in IOPS_TYPES:
        raise UsageError(f"IOPS must be one of {', '.join(map(str, IOPS_TYPES))}, not {iops}")
    job = job_id or uuid.uuid4().hex[:12]
    temps = _Temps(zone, bucket, apis.s3(region))
    cancel = threading.Event()
    try:
        base = name or src.get("volume_name") or info.name or f"restored-{info.id[:8]}"
        await check_bucket(apis, bucket, region)
        new_name = await _unique_name(apis, zone, project, base)
        temps.key = f"{TEMP_PREFIX}restore/{job}/{info.id[:16]}.qcow2"
        temps.track()
        reporter.phase("upload", total=info.bytes, message=f"to s3://{bucket}/{temps.key}")
        await _upload(reporter, store, info, temps, cancel, concurrency, job)
        reporter.phase("import", message=f"from s3://{bucket}/{temps.key}")
        def imported(snap: Any) -> None:
            temps.snapshot_id = snap.id
            temps.track()

        snap_name = f"strongroom-{job}-{new_name}"[:255]

        def import_() -> Any:
            return apis.block.import_snapshot_from_object_storage(
                bucket=bucket, key=temps.key or "", name=snap_name, zone=zone,
                project_id=project, tags=temp_tags(job))

        def find_import() -> Any:
            return _find_temp_snapshot(apis, zone, project, job, snap_name, None)

        try:
            snap = await _settled(lambda: create_once(import_, find_import, apis.retry,
                                                      f"importing s3://{bucket}/{temps.key}"),
                                  imported)
        except ScalewayException as exc:
            raise describe(exc, f"importing s3://{bucket}/{temps.key} in {zone}") from None
        snap = await _wait_snapshot(apis, zone, snap.id, {"available"}, {"creating"},
                                    t.import_, "the import", t)
        reporter.phase("volume", message=new_name)
        snap_size = int(snap.size or 0)
        def created(vol: Any) -> None:
            temps.volume_id = vol.id

        def create_volume() -> Any:
            return apis.block.create_volume(
                zone=zone, name=new_name, perf_iops=iops, project_id=project,
                tags=[str(x) for x in src.get("tags") or []],
                from_snapshot=CreateVolumeRequestFromSnapshot(
                    snapshot_id=snap.id,
                    size=target_size if target_size > snap_size else None))

        def find_volume() -> Any:
            return _find_restored_volume(apis, zone, project, new_name, snap.id)

        try:
            vol = await _settled(lambda: create_once(create_volume, find_volume, apis.retry,
                                                     f"creating volume {new_name}"), created)
        except ScalewayException as exc:
            raise describe(exc, f"creating volume {new_name} in {zone}") from None
        vol = await _wait_volume(apis, zone, vol.id, t)
        temps.volume_id = None  # finished: it is the result, not a temporary
        reporter.phase("cleanup")
        warnings = await _remove_temps(apis, temps, t)
        return RestoreOutcome(volume_id=vol.id, name=vol.name, zone=zone, project_id=project,
                              size=int(vol.size or 0), type=str(vol.type_),
                              snapshot_id=snap.id, store_snapshot=info.id, warnings=warnings)
    except BaseException:
        cancel.set()
        with contextlib.suppress(Exception):
            await asyncio.shield(_remove_temps(apis, temps, t))
        temps.untrack()
        raise


async def _upload(reporter: Any, store: Any, info: Any, temps: _Temps, cancel: threading.Event,
                  concurrency: int, job: str) -> None:
    def run() -> None:
        writer = MultipartWriter(temps.s3, temps.bucket, temps.key or "", info.bytes,
                                 concurrency=concurrency, cancel=cancel,
                                 metadata={"strongroom-job": job})
        try:
            store.restore(info.id, writer, cancel=cancel,
                          progress=lambda done, total: reporter.progress(done, info.bytes))
            writer.commit()
        finally:
            writer.close()

    await _blocking(run, cancel)


async def _unique_name(apis: Apis, zone: str, project: str, base: str) -> str:
    try:
        volumes = await asyncio.to_thread(apis.block.list_volumes_all, zone=zone,
                                          project_id=project, include_deleted=False)
    except ScalewayException as exc:
        raise describe(exc, f"listing volumes in {zone}") from None
    taken = {v.name for v in volumes}
    if base not in taken:
        return base
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    for n in range(1, 1000):
        candidate = f"{base}-restored-{stamp}" + (f"-{n}" if n > 1 else "")
        if candidate not in taken:
            return candidate
    return f"{base}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------------------
# shared steps

async def check_bucket(apis: Apis, bucket: str, region: str) -> None:
    """The staging bucket must exist and be in the zone's region (exports stay in a region)."""
    s3 = apis.s3(region)
    try:
        where = (await asyncio.to_thread(s3.get_bucket_location, Bucket=bucket)).get(
            "LocationConstraint") or "us-east-1"
    except ClientError as exc:
        if is_not_found(exc):
            raise OperationError(f"the staging bucket {bucket} does not exist: create it in "
                                 f"{region} or pass --bucket") from None
        raise describe(exc, f"reading the location of bucket {bucket}") from None
    except BotoCoreError as exc:
        raise describe(exc, f"reaching the S3 endpoint for {region}") from None
    if where != region:
        raise OperationError(f"the staging bucket {bucket} is in region {where}, not {region}: "
                             f"use a bucket in {region} (--bucket, or the settings)")


async def _get_volume(apis: Apis, zone: str, volume_id: str) -> Any:
    try:
        vol = await asyncio.to_thread(apis.block.get_volume, volume_id=volume_id, zone=zone)
    except ScalewayException as exc:
        raise _volume_error(exc, volume_id, zone, "reading the volume") from None
    if str(vol.status) not in ("available", "in_use"):
        raise OperationError(f"volume {vol.name} ({vol.id}) is {vol.status}: wait until it is "
                             f"available or in use, then retry")
    return vol


def _volume_error(exc: ScalewayException, volume_id: str, zone: str, doing: str) -> Exception:
    if is_not_found(exc):
        return OperationError(f"volume {volume_id} no longer exists in {zone} "
                              f"({scw_message(exc)}): refresh the inventory and pick another")
    return describe(exc, f"{doing} of volume {volume_id}")


async def _wait_snapshot(apis: Apis, zone: str, snapshot_id: str, done: set[str],
                         pending: set[str], timeout: float, what: str, t: Timeouts) -> Any:
    def fetch() -> Any:
        return apis.block.get_snapshot(snapshot_id=snapshot_id, zone=zone)

    return await _wait(fetch, done, pending, timeout, f"{what} (snapshot {snapshot_id})", t)


async def _wait_volume(apis: Apis, zone: str, volume_id: str, t: Timeouts) -> Any:
    def fetch() -> Any:
        return apis.block.get_volume(volume_id=volume_id, zone=zone)

    return await _wait(fetch, {"available"}, {"creating", "updating"}, t.volume,
                       f"the new volume {volume_id}", t)


async def _wait(fetch: Callable[[], Any], done: set[str], pending: set[str], timeout: float,
                what: str, t: Timeouts) -> Any:
    start = time.monotonic()
    delay = t.poll_min
    while True:
        try:
            obj = await asyncio.to_thread(fetch)
        except ScalewayException as exc:
            if is_not_found(exc):
                raise OperationError(f"{what} disappeared while we waited for it "
                                     f"({scw_message(exc)}); was it deleted? retry") from None
            raise describe(exc, f"checking {what}") from None
        status = str(obj.status)
        if status in done:
            return obj
        if status not in pending:
            raise OperationError(f"{what} went to status {status!r}: Scaleway could not "
                                 f"complete it; nothing was kept, retry or contact support")
        if time.monotonic() - start > timeout:
            raise OperationError(f"gave up on {what} after {timeout:.0f} s (still {status}); "
                                 f"retry later, a later backup reuses a finished export")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, t.poll_max)


async def _blocking(fn: Callable[[], T], cancel: threading.Event) -> T:
    """Run ``fn`` in a thread; on cancellation tell it to stop and wait until it has."""
    task = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        cancel.set()
        with contextlib.suppress(BaseException):
            await task
        raise


async def _settled(fn: Callable[[], T], made: Callable[[T], None] | None = None) -> T:
    """Run a call that creates something; if cancelled meanwhile, let it finish and record what
    it made (so cleanup knows), then let the cancellation through."""
    task = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        result = await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            result = await task
            if made is not None:
                made(result)
        raise
    if made is not None:
        made(result)
    return result


async def _remove_temps(apis: Apis, temps: _Temps, t: Timeouts) -> list[str]:
    """Delete what this run created; say (not raise) what could not be removed."""
    warnings: list[str] = []
    for volume_id in [temps.volume_id] if temps.volume_id else []:
        warnings += await _delete_volume(apis, temps.zone, volume_id, t)
    # The snapshot first: deleting it waits for a running export, which may still write the
    # object we are about to remove.
    if temps.snapshot_id:
        warnings += await _delete_snapshot(apis, temps.zone, temps.snapshot_id, t)
    if temps.key:
        try:
            await asyncio.to_thread(temps.s3.delete_object, Bucket=temps.bucket, Key=temps.key)
        except (ClientError, BotoCoreError) as exc:
            if not is_not_found(exc):
                warnings.append(f"could not delete s3://{temps.bucket}/{temps.key}: "
                                f"{scw_message(exc)}")
    temps.untrack()
    return warnings


async def _delete_snapshot(apis: Apis, zone: str, snapshot_id: str, t: Timeouts) -> list[str]:
    # A snapshot being created or exported cannot be deleted yet: let it settle first.
    for attempt in range(5):
        with contextlib.suppress(OperationError):
            await _wait_snapshot(apis, zone, snapshot_id, {"available", "error"},
                                 {"creating", "exporting"}, min(t.export, 3600), "the snapshot", t)
        try:
            await asyncio.to_thread(apis.block.delete_snapshot, snapshot_id=snapshot_id,
                                    zone=zone)
            return []
        except ScalewayException as exc:
            if is_not_found(exc):
                return []
            if status_of(exc) not in (409, 412) or attempt == 4:
                return [f"could not delete snapshot {snapshot_id} in {zone}: "
                        f"{scw_message(exc)}"]
            await asyncio.sleep(t.poll_min)
    return []


async def _delete_volume(apis: Apis, zone: str, volume_id: str, t: Timeouts) -> list[str]:
    with contextlib.suppress(OperationError):
        await _wait(lambda: apis.block.get_volume(volume_id=volume_id, zone=zone),
                    {"available", "error"}, {"creating"}, t.volume, "the new volume", t)
    try:
        await asyncio.to_thread(apis.block.delete_volume, volume_id=volume_id, zone=zone)
    except ScalewayException as exc:
        if not is_not_found(exc):
            return [f"could not delete half-made volume {volume_id}: {scw_message(exc)}"]
    return []


async def cleanup_leftovers(client: Any, zone: str, bucket: str, *, min_age: float = 3600.0,
                            volume_id: str | None = None, keep_keys: set[str] | None = None,
                            keep_snapshots: set[str] | None = None,
                            timeouts: Timeouts | None = None) -> list[str]:
    """Remove temporaries of crashed runs: snapshots tagged ``strongroom-temp`` in ``zone`` and
    objects under ``strongroom-tmp/`` in ``bucket``, older than ``min_age`` seconds (those of
    ``volume_id`` whatever their age), never those of a flow running in this process.
    Returns what was removed."""
    apis = apis_for(client)
    t = timeouts or Timeouts()
    keep_keys, keep_snapshots = keep_keys or set(), keep_snapshots or set()
    now = dt.datetime.now(dt.timezone.utc)
    removed: list[str] = []

    def old(when: Any) -> bool:
        if when is None:
            return True
        if isinstance(when, str):
            when = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        return (now - when).total_seconds() >= min_age

    try:
        snaps = await asyncio.to_thread(apis.block.list_snapshots_all, zone=zone, include_deleted=False,
                                        tags=[TEMP_TAG])
    except ScalewayException as exc:
        raise describe(exc, f"listing snapshots in {zone}") from None
    for snap in snaps:
        if TEMP_TAG not in (snap.tags or []) or snap.id in _ACTIVE_SNAPSHOTS \
                or snap.id in keep_snapshots:
            continue
        mine = volume_id is not None and getattr(snap.parent_volume, "id", None) == volume_id
        if not (mine or old(snap.created_at)) or str(snap.status) in ("creating", "exporting"):
            continue
        if not await _delete_snapshot(apis, zone, snap.id, t):
            removed.append(f"snapshot {snap.id}")
    s3 = apis.s3(region_of(zone))
    try:
        listing = await asyncio.to_thread(s3.list_objects_v2, Bucket=bucket, Prefix=TEMP_PREFIX)
        uploads = await asyncio.to_thread(s3.list_multipart_uploads, Bucket=bucket,
                                          Prefix=TEMP_PREFIX)
    except ClientError as exc:
        if is_not_found(exc):
            return removed
        raise describe(exc, f"listing bucket {bucket}") from None
    for obj in listing.get("Contents", []):
        key = obj["Key"]
        mine = volume_id is not None and key.startswith(f"{TEMP_PREFIX}{volume_id}/")
        if key in _ACTIVE_KEYS or key in keep_keys or not (mine or old(obj["LastModified"])):
            continue
        with contextlib.suppress(ClientError, BotoCoreError):
            await asyncio.to_thread(s3.delete_object, Bucket=bucket, Key=key)
            removed.append(f"s3://{bucket}/{key}")
    for up in uploads.get("Uploads", []):
        if up["Key"] in _ACTIVE_KEYS or not old(up.get("Initiated")):
            continue
        with contextlib.suppress(ClientError, BotoCoreError):
            await asyncio.to_thread(s3.abort_multipart_upload, Bucket=bucket, Key=up["Key"],
                                    UploadId=up["UploadId"])
            removed.append(f"upload s3://{bucket}/{up['Key']}")
    return removed


def submit_backups(runner: Any, volumes: list[Any], **kwargs: Any) -> list[Any]:
    """Queue one backup job per volume on an ``engine.jobs.JobRunner``; the runner's
    concurrency limit says how many run at once. ``kwargs`` go to :func:`backup_volume`."""
    jobs = []
    for vol in volumes:
        def run(reporter: Any, vol: Any = vol) -> Any:
            return backup_volume(reporter, volume_id=vol.id, zone=vol.zone, **kwargs)

        jobs.append(runner.submit(f"backup {vol.name}", run, kind="backup", volume_id=vol.id,
                                  zone=vol.zone))
    return jobs
