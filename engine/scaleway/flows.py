"""The two flows (DESIGN.md): back up an SBS volume into the store, restore a store snapshot into
a new SBS volume. Both are coroutines driven by an ``engine.jobs.Reporter``; blocking SDK, boto3
and store calls run in threads. Cancelled or failed, a flow removes what it created, then lets the
error through. Temporaries carry markers (tag ``strongroom-temp`` + job id, key prefix
``strongroom-tmp/``) so a later run can find and remove what a crashed one left, and a lease
(``engine.scaleway.leases``) so that no other run, in any process or machine, adopts or removes
them while their owner is alive.

Every creating call (snapshot, export, import, volume) goes through ``create_once``: when its
answer is lost (5xx, cut connection), the same markers find what it made, which is adopted
rather than made twice.

A restore first sweeps the leftovers of dead runs in its region's zones and bucket (aborting
their multipart uploads), and sweeps again at its end for what was still being made. The
volume it makes is tagged ``strongroom-restoring`` (its owner) and ``strongroom-source`` until
it is done, so that a rerun after a crash finishes that half-made volume instead of making a
second one beside it.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from scaleway import ScalewayException
from scaleway.block.v1 import CreateVolumeRequestFromSnapshot

from engine.errors import OperationError, UsageError
from engine.jobs import blocking
from engine.retry import PollPolicy, RetryPolicy, poll
from engine.scaleway.api import (Apis, apis_for, create_once, describe, is_denied,
                                 is_not_found, scw_message, status_of)
from engine.scaleway.config import ZONES, export_refusal, region_of, s3_endpoint
from engine.scaleway.images import HEAD, import_refusal
from engine.scaleway.inventory import LEGACY_TYPES, TEMP_TAG
from engine.scaleway.leases import (LEASE_PREFIX, Claim, Holders, Lease, LeaseTerms,
                                    lease_key, read_holders, tag_lease)
from engine.scaleway.s3stream import MiB, MultipartWriter, RangedReader, StreamReader
from engine.settings import Settings, load_settings

T = TypeVar("T")
TEMP_PREFIX = "strongroom-tmp/"
# On a volume a restore is still making: ``=<owner>`` of that run, ``=<store snapshot id>`` it is
# made from. Removed once it is done; a rerun finishes a dead run's marked volume.
RESTORING_TAG = "strongroom-restoring"
SOURCE_TAG = "strongroom-source"
IOPS_TYPES = {5000: "sbs_5k", 15000: "sbs_15k"}
GB = 1000 ** 3  # Scaleway sizes volumes in decimal gigabytes
# An exported object may be listed a moment after the export says it is done.
HEAD_RETRY = RetryPolicy(attempts=5, base=0.2, cap=2.0, floor=0.1)


@dataclass
class Timeouts:
    """How long to wait for Scaleway's transitions (imports of big images take many minutes),
    how fast to poll them, and how long a run's lease on its temporaries lives unrenewed."""

    snapshot: float = 3600.0
    export: float = 6 * 3600.0
    import_: float = 6 * 3600.0
    volume: float = 3600.0
    poll_min: float = 0.5
    poll_max: float = 10.0
    lease: float = 900.0
    heartbeat: float = 60.0

    @property
    def poll(self) -> PollPolicy:
        return PollPolicy(first=self.poll_min, most=self.poll_max)

    @property
    def lease_terms(self) -> LeaseTerms:
        return LeaseTerms(ttl=self.lease, every=self.heartbeat)


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
    kms_key_id: str | None = None  # the original's KMS key, kept
    resumed: bool = False  # the volume is an interrupted run's, finished by this one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _NullReporter:
    def phase(self, name: str, total: int = 0, message: str = "") -> None: ...
    def progress(self, done: int, total: int | None = None, message: str | None = None,
                 **extra: Any) -> None: ...
    def call(self, method: str, path: str, status: int | str, ms: float, *,
             request_id: str | None = None) -> None: ...


@dataclass
class _Temps:
    """What this run created or adopted and must remove; its lease says so to other runs."""

    zone: str
    bucket: str
    s3: Any
    lease: Lease
    snapshot_id: str | None = None
    key: str | None = None
    volume_id: str | None = None  # a restore's half-made volume


def temp_tags(job: str) -> list[str]:
    return [TEMP_TAG, f"strongroom-job={job}"]


# ---------------------------------------------------------------------------------------------
# backup

async def backup_volume(reporter: Any, *, store: Any, client: Any, volume_id: str, zone: str,
                        bucket: str | None = None, keep: bool | None = None,
                        settings: Settings | None = None, timeouts: Timeouts | None = None,
                        concurrency: int | None = None, part_size: int = 8 * MiB,
                        job_id: str | None = None,
                        leftovers_min_age: float = 3600.0,
                        snapshot_time: str | None = None) -> BackupOutcome:
    """Snapshot → export → stream into the store → commit → clean up.

    ``concurrency``: ranged GETs in flight during the transfer. By default 8 on Scaleway's own
    endpoints, and 1 (one streamed GET) elsewhere: simple S3 servers such as moto read the whole
    object for every ranged GET, which makes many ranges of a big object very slow.
    ``job_id``: the run's owner id in its lease, so unique across processes and machines (a
    uuid); a new uuid by default. ``snapshot_time``: the store snapshot's recorded time
    (ISO 8601), now by default."""
    reporter = reporter or _NullReporter()
    settings = settings or load_settings()
    t = timeouts or Timeouts()
    apis = apis_for(client, None if isinstance(reporter, _NullReporter) else reporter)
    region = region_of(zone)
    bucket = bucket or settings.bucket_for(region)
    keep = settings.keep_temporaries if keep is None else keep
    if concurrency is None:
        concurrency = 8 if s3_endpoint(region).endswith(".scw.cloud") else 1
    owner = job_id or uuid.uuid4().hex
    job = owner if job_id else owner[:12]
    s3 = apis.s3(region)
    temps = _Temps(zone, bucket, s3, Lease(apis, zone, bucket, s3, owner=owner, job=job,
                                           terms=t.lease_terms))
    cancel = threading.Event()
    started = time.monotonic()

    async def run() -> BackupOutcome:
        try:
            resumed = await _find_resumable(apis, temps, vol, t)
            with contextlib.suppress(OperationError):  # tidying up after others is best effort
                await cleanup_leftovers(apis, zone, bucket, min_age=leftovers_min_age,
                                        volume_id=vol.id, timeouts=t, lease=temps.lease)
            if resumed:
                scw_snapshot_id = (temps.key or "").rsplit("/", 1)[-1].removesuffix(".qcow2")
                reporter.phase("export", message=f"reusing s3://{bucket}/{temps.key}")
            else:
                scw_snapshot_id = await _snapshot_and_export(reporter, apis, temps, vol, job, t)
            size = await _object_size(apis, temps)
            reporter.phase("transfer", total=size, message=f"s3://{bucket}/{temps.key}")
            on_eof = lambda: reporter.phase("commit", total=size)  # noqa: E731
            # concurrency 1: one streamed GET (for S3 servers whose ranged GETs are costly)
            reader: Any = (StreamReader(s3, bucket, temps.key or "", size, cancel=cancel,
                                        on_eof=on_eof) if concurrency <= 1 else
                           RangedReader(s3, bucket, temps.key or "", size,
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
                                        stored_progress=stored, time=snapshot_time)

            result = await blocking(run_backup, cancel)
            reporter.phase("cleanup")
            outcome = BackupOutcome(
                volume_id=vol.id, volume_name=vol.name, zone=zone, snapshot=result.snapshot.id,
                bytes=result.bytes, stored_bytes=result.stored_bytes,
                seconds=round(time.monotonic() - started, 3), scw_snapshot_id=scw_snapshot_id,
                resumed=resumed)
            if keep:
                outcome.kept = [f"s3://{bucket}/{temps.key}"] + (
                    [f"snapshot {temps.snapshot_id}"] if temps.snapshot_id else [])
                await temps.lease.disown(temps.snapshot_id, temps.key)
            else:
                outcome.warnings = await _remove_temps(apis, temps, t)
            return outcome
        except BaseException:
            cancel.set()
            await asyncio.shield(_after_failure(apis, temps, t, keep))
            raise

    reporter.phase("snapshot", message=f"of {volume_id}")  # shown as "snapshot of …"
    # Before anything is made: a volume that cannot be exported (legacy, over 1 TB), a bucket
    # that cannot take an export.
    vol = await _get_volume(apis, zone, volume_id)
    await check_bucket(apis, bucket, region, export=True)
    return await _leased(temps.lease, run(), cancel)


async def _leased(lease: Lease, work: Awaitable[T], cancel: threading.Event) -> T:
    """Run a flow's work under its lease: renewed while it runs; a lease that cannot be
    renewed stops the work (its threads through ``cancel``); released at the end."""
    await lease.start()
    try:
        return await lease.guard(work, on_lost=cancel.set)
    finally:
        await asyncio.shield(lease.release())


async def _after_failure(apis: Apis, temps: _Temps, t: Timeouts, keep: bool) -> None:
    """A failed or cancelled run removes what it made, or (``keep``) lets it go. After a lost
    lease only a half-made volume (no other run ever adopts one): another run may have taken
    the snapshot and the object over by now."""
    if temps.lease.lost is not None:
        with contextlib.suppress(Exception):
            if temps.volume_id:
                await _delete_volume(apis, temps.zone, temps.volume_id, t)
        return
    with contextlib.suppress(Exception):
        if keep:
            await temps.lease.disown(temps.snapshot_id, temps.key)
        else:
            await _remove_temps(apis, temps, t)


async def _snapshot_and_export(reporter: Any, apis: Apis, temps: _Temps, vol: Any, job: str,
                               t: Timeouts) -> str:
    def made(snap: Any) -> None:
        temps.snapshot_id = snap.id
        temps.lease.add_snapshot(snap.id, temp_tags(job))

    name = f"strongroom-{job}-{vol.name}"[:255]

    def create() -> Any:  # the lease is in the tags: the snapshot is never unowned
        return apis.block.create_snapshot(volume_id=vol.id, public=False, zone=temps.zone,
                                          name=name, project_id=vol.project_id,
                                          tags=temp_tags(job) + temps.lease.tags())

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
    await temps.lease.hold_key(temps.key)  # before the export makes the object
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
    async def head() -> Any:  # a coroutine function: tenacity awaits only those
        return await asyncio.to_thread(temps.s3.head_object, Bucket=temps.bucket, Key=temps.key)

    try:
        return int((await HEAD_RETRY.call_async(head, _s3_missing))["ContentLength"])
    except ClientError as exc:
        if not _s3_missing(exc):
            raise describe(exc, f"reading s3://{temps.bucket}/{temps.key}") from None
    raise OperationError(f"the export of snapshot {temps.snapshot_id} failed: no object "
                         f"s3://{temps.bucket}/{temps.key} appeared; check that the bucket is "
                         f"in {region_of(temps.zone)} and in the volume's project, then retry")


def _s3_missing(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and (
        is_not_found(exc) or exc.response.get("Error", {}).get("Code") == "404")


async def _find_resumable(apis: Apis, temps: _Temps, vol: Any, t: Timeouts) -> bool:
    """An export of this volume that no live run holds (a crashed run's, or one made before
    leases), still in the bucket, is claimed and reused."""
    prefix = f"{TEMP_PREFIX}{vol.id}/"
    try:
        listing = await asyncio.to_thread(temps.s3.list_objects_v2, Bucket=temps.bucket,
                                          Prefix=prefix)
        # after the listing: an object listed was leased before it was made
        holders = await asyncio.to_thread(read_holders, temps.s3, temps.bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise OperationError(f"the staging bucket {temps.bucket} does not exist: create it "
                                 f"in {region_of(temps.zone)} or pass --bucket") from None
        raise describe(exc, f"listing bucket {temps.bucket}") from None
    objects = sorted(listing.get("Contents", []), key=lambda o: o["LastModified"], reverse=True)
    for obj in objects:
        key = obj["Key"]
        if holders.for_key(key).holder is not None or not obj.get("Size"):
            continue
        snap_id = key[len(prefix):].removesuffix(".qcow2")
        try:
            snap = await asyncio.to_thread(apis.block.get_snapshot, snapshot_id=snap_id,
                                           zone=temps.zone)
        except ScalewayException as exc:
            if is_denied(exc):
                continue  # another organization's snapshot: not ours to reuse or remove
            if not is_not_found(exc):
                raise describe(exc, f"reading snapshot {snap_id}") from None
            snap = None
        if snap is not None and (holders.for_snapshot(snap.id, snap.tags or []).holder
                                 or str(snap.status) not in ("available", "in_use",
                                                             "exporting")):
            continue
        hold = {snap_id: list(snap.tags or [])} if snap is not None else {}
        if await temps.lease.claim([key], hold=hold, whole=True):
            continue  # another run claimed it at the same moment
        temps.key = key
        temps.snapshot_id = snap_id if snap is not None else None
        if snap is not None and str(snap.status) == "exporting":  # a crashed run's, unfinished
            await _wait_snapshot(apis, temps.zone, snap_id, {"available"}, {"exporting"},
                                 t.export, "the earlier export", t)
        return True
    return False


def _source_info(vol: Any, scw_snapshot_id: str, settings: Settings, bucket: str) -> dict:
    return {"volume_id": vol.id, "volume_name": vol.name, "size": int(vol.size or 0),
            "type": str(vol.type_),
            "perf_iops": getattr(vol.specs, "perf_iops", None) if vol.specs else None,
            "project_id": vol.project_id, "zone": str(vol.zone), "tags": list(vol.tags or []),
            "environment": settings.environment, "data_class": settings.data_class,
            "scw_snapshot_id": scw_snapshot_id, "bucket": bucket, "format": "qcow2",
            "kms_key_id": getattr(vol, "kms_key_id", None) or None}


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
                           concurrency: int = 4, job_id: str | None = None,
                           rename_on_clash: bool = False,
                           leftovers_min_age: float = 3600.0) -> RestoreOutcome:
    """Store → multipart upload → import → new volume → clean up. ``size`` in bytes.

    The new volume is named ``name`` (default: the original's). When a volume of that name is
    already in the zone and project, the restore is refused before anything is made (a
    UsageError), unless ``rename_on_clash``: then it is named ``<name>-restored-YYYYMMDD``.
    A volume of that name that a dead run of this same restore left half-made is finished
    instead (``resumed``); one of another run, still alive or of another snapshot, is refused.
    ``leftovers_min_age``: as for :func:`cleanup_leftovers`."""
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
    kms_key_id = src.get("kms_key_id") or None     # the restored volume keeps the original's
    refusal = await asyncio.to_thread(_image_refusal, store, info.id)
    if refusal:
        raise UsageError(f"snapshot {info.id[:8]} cannot be restored into Scaleway: {refusal}; "
                         f"restore it to a file with `strongroom restore-image` instead")
    owner = job_id or uuid.uuid4().hex
    job = owner if job_id else owner[:12]
    s3 = apis.s3(region)
    temps = _Temps(zone, bucket, s3, Lease(apis, zone, bucket, s3, owner=owner, job=job,
                                           terms=t.lease_terms))
    cancel = threading.Event()
    base = name or src.get("volume_name") or info.name or f"restored-{info.id[:8]}"

    async def make(new_name: str) -> tuple[Any, str]:
        """Upload, import, a new volume: the volume once available, and its snapshot's id."""
        temps.key = f"{TEMP_PREFIX}restore/{job}/{info.id[:16]}.qcow2"
        await temps.lease.hold_key(temps.key)  # before the upload starts
        reporter.phase("upload", total=info.bytes, message=f"to s3://{bucket}/{temps.key}")
        await _upload(reporter, store, info, temps, cancel, concurrency, job)
        reporter.phase("import", message=f"from s3://{bucket}/{temps.key}")

        def imported(snap: Any) -> None:
            temps.snapshot_id = snap.id
            temps.lease.add_snapshot(snap.id, temp_tags(job))

        snap_name = f"strongroom-{job}-{new_name}"[:255]

        def import_() -> Any:
            return apis.block.import_snapshot_from_object_storage(
                bucket=bucket, key=temps.key or "", name=snap_name, zone=zone,
                project_id=project, tags=temp_tags(job) + temps.lease.tags())

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
            # marked until done: a rerun after a crash finishes it rather than make another
            tags = [str(x) for x in src.get("tags") or []] + [
                f"{RESTORING_TAG}={owner}", f"{SOURCE_TAG}={info.id}"]
            return apis.block.create_volume(
                zone=zone, name=new_name, perf_iops=iops, project_id=project, tags=tags,
                kms_key_id=kms_key_id,
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
        return vol, snap.id

    async def run() -> RestoreOutcome:
        try:
            swept = await _sweep_region(apis, zone, bucket, t, temps.lease, leftovers_min_age)
            if target.resume is not None:
                vol, snapshot_id = await _resume(reporter, apis, temps, target.resume, t)
            else:
                vol, snapshot_id = await make(target.name)
            reporter.phase("cleanup")
            warnings = await _remove_temps(apis, temps, t)
            warnings += await _unmark(apis, zone, vol)
            if swept.waiting or target.resume is not None:
                # what dead runs were still making at the start (their imports, the snapshot
                # of a resumed volume) has settled or is settling now: remove it
                await _sweep_region(apis, zone, bucket, t, temps.lease, leftovers_min_age,
                                    settle=True)
            return RestoreOutcome(volume_id=vol.id, name=vol.name, zone=zone, project_id=project,
                                  size=int(vol.size or 0), type=str(vol.type_),
                                  snapshot_id=snapshot_id, store_snapshot=info.id,
                                  warnings=warnings,
                                  kms_key_id=getattr(vol, "kms_key_id", None) or None,
                                  resumed=target.resume is not None)
        except BaseException:
            cancel.set()
            await asyncio.shield(_after_failure(apis, temps, t, keep=False))
            raise

    await check_bucket(apis, bucket, region)
    target = await _target(apis, s3, zone, bucket, project, base, rename_on_clash,
                           _Wanted(info.id, target_size, IOPS_TYPES[iops]))
    return await _leased(temps.lease, run(), cancel)


@dataclass(frozen=True)
class _Wanted:
    """What a restore makes: a volume from ``source`` (a store snapshot id), at least ``size``
    bytes, of volume type ``kind``."""

    source: str
    size: int
    kind: str


@dataclass
class _Target:
    """Where a restore goes: a new volume's free name, or (``resume``) the half-made volume a
    dead run of the same restore left, to finish."""

    name: str
    resume: Any = None


def _marks(tags: Any) -> tuple[str, str] | None:
    """(owner, store snapshot id) of a volume a restore is still making; None if unmarked."""
    values = dict(str(t).partition("=")[::2] for t in tags or [])
    owner = values.get(RESTORING_TAG)
    return (owner, values.get(SOURCE_TAG, "")) if owner else None


def _unmarked(tags: Any) -> list[str]:
    return [str(t) for t in tags or []
            if not str(t).startswith((f"{RESTORING_TAG}=", f"{SOURCE_TAG}="))]


async def _target(apis: Apis, s3: Any, zone: str, bucket: str, project: str, base: str,
                  rename: bool, wanted: _Wanted) -> _Target:
    """``base`` when no volume of the project in ``zone`` has that name, or a half-made volume
    of that name to resume. Taken: a UsageError that says by what, or (``rename``) the first
    free ``<base>-restored-YYYYMMDD[-N]`` (or a half-made one of those names to resume)."""
    try:
        volumes = await asyncio.to_thread(apis.block.list_volumes_all, zone=zone,
                                          project_id=project, include_deleted=False)
    except ScalewayException as exc:
        raise describe(exc, f"listing volumes in {zone}") from None
    marked = sorted((v for v in volumes if _marks(v.tags) and (
        v.name == base or (rename and v.name.startswith(f"{base}-restored-")))),
        key=lambda v: v.name != base)
    holders = None
    for vol in marked:
        if holders is None:
            try:
                holders = await asyncio.to_thread(read_holders, s3, bucket)
            except ClientError as exc:
                raise describe(exc, f"reading the leases in bucket {bucket}") from None
        why = await _not_resumable(apis, zone, vol, holders, wanted)
        if why is None:
            return _Target(vol.name, resume=vol)
        if vol.name == base and not rename:
            raise UsageError(f"volume {base} ({vol.id}) in {zone} {why}")
    taken = {v.name: v for v in volumes}
    if base not in taken:
        return _Target(base)
    renamed = _renamed(base, set(taken))
    if not rename:
        raise UsageError(f"a volume named {base} already exists in {zone} ({taken[base].id}): "
                         f"choose another name with --name, or pass --rename-on-clash to "
                         f"restore as {renamed}")
    return _Target(renamed)


async def _not_resumable(apis: Apis, zone: str, vol: Any, holders: Holders,
                         wanted: _Wanted) -> str | None:
    """Why a marked volume is not a dead run's half-made restore of ``wanted`` (None: it is).
    Its run is alive while its lease object is, or while a live lease holds the snapshot the
    volume is made from (its tags are renewed, whatever the bucket)."""
    owner, source = _marks(vol.tags) or ("", "")
    alive = holders.owner_live(owner)
    if not alive and vol.parent_snapshot_id:
        try:
            snap = await asyncio.to_thread(apis.block.get_snapshot,
                                           snapshot_id=vol.parent_snapshot_id, zone=zone)
        except ScalewayException as exc:
            if not (is_not_found(exc) or is_denied(exc)):
                raise describe(exc, f"reading snapshot {vol.parent_snapshot_id}") from None
        else:
            alive = holders.for_snapshot(snap.id, snap.tags or []).holder is not None
    other = "choose another name with --name"
    if alive:
        return f"is being restored right now by another run: wait for it to end, or {other}"
    if source != wanted.source:
        return (f"is what an interrupted restore of store snapshot {source[:12]} left: "
                f"delete it, or {other}")
    if str(vol.status) not in ("creating", "available", "updating"):
        return (f"is what an interrupted restore of this snapshot left, and is {vol.status}: "
                f"delete it, or {other}")
    if int(vol.size or 0) < wanted.size or str(vol.type_) != wanted.kind:
        return (f"is what an interrupted restore of this snapshot left, made "
                f"{int(vol.size or 0) / GB:g} GB {vol.type_} rather than as asked now: "
                f"delete it, or {other}")
    return None


async def _resume(reporter: Any, apis: Apis, temps: _Temps, vol: Any,
                  t: Timeouts) -> tuple[Any, str]:
    """Finish a dead run's half-made volume: wait until it is available, and take over the
    temporary snapshot it is made from, to remove it. Never deleted on failure: it stays
    marked, for the next run."""
    reporter.phase("volume", message=f"resuming {vol.name} ({vol.id}), which an interrupted "
                                     f"run of this restore left")
    parent = vol.parent_snapshot_id or ""
    if parent:
        try:
            snap = await asyncio.to_thread(apis.block.get_snapshot, snapshot_id=parent,
                                           zone=temps.zone)
        except ScalewayException as exc:
            if not is_not_found(exc):
                raise describe(exc, f"reading snapshot {parent}") from None
        else:
            if TEMP_TAG in (snap.tags or []) and not await temps.lease.claim(snapshots=[parent]):
                temps.snapshot_id = parent
    return await _wait_volume(apis, temps.zone, vol.id, t), parent


async def _unmark(apis: Apis, zone: str, vol: Any) -> list[str]:
    """The restore of ``vol`` is done: its restore tags go."""
    if _marks(vol.tags) is None:
        return []
    try:
        await asyncio.to_thread(apis.block.update_volume, volume_id=vol.id, zone=zone,
                                tags=_unmarked(vol.tags))
    except ScalewayException as exc:
        return [f"could not remove the tags {RESTORING_TAG} and {SOURCE_TAG} from volume "
                f"{vol.name} ({vol.id}): {scw_message(exc)}; remove them by hand"]
    return []


async def _sweep_region(apis: Apis, zone: str, bucket: str, t: Timeouts, lease: Lease,
                        min_age: float, settle: bool = False) -> "Swept":
    """A restore's sweep of dead runs' leftovers in its region's zones and its bucket: best
    effort (tidying after others never fails the restore)."""
    zones = [z for z in ZONES if region_of(z) == region_of(zone)]
    try:
        return await sweep_leftovers(apis, zone, bucket, min_age=min_age, timeouts=t,
                                     lease=lease, zones=zones, settle=settle)
    except OperationError:
        return Swept()


def _image_refusal(store: Any, ref: str) -> str:
    """Why Scaleway's import would refuse the stored image, read from its first bytes."""
    with store.open_image(ref) as image:
        return import_refusal(image.read(HEAD))


async def _upload(reporter: Any, store: Any, info: Any, temps: _Temps, cancel: threading.Event,
                  concurrency: int, job: str) -> None:
    def run() -> None:
        writer = MultipartWriter(temps.s3, temps.bucket, temps.key or "", info.bytes,
                                 concurrency=concurrency, cancel=cancel,
                                 metadata={"strongroom-job": job,
                                           "strongroom-owner": temps.lease.owner})
        try:
            store.restore(info.id, writer, cancel=cancel,
                          progress=lambda done, total: reporter.progress(done, info.bytes))
            writer.commit()
        finally:
            writer.close()

    await blocking(run, cancel)


def _renamed(base: str, taken: set[str]) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    for n in range(1, 1000):
        candidate = f"{base}-restored-{stamp}" + (f"-{n}" if n > 1 else "")
        if candidate not in taken:
            return candidate
    return f"{base}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------------------
# shared steps

async def check_bucket(apis: Apis, bucket: str, region: str, export: bool = False) -> None:
    """The staging bucket must exist and be in the zone's region (exports stay in a region);
    for an ``export``, it must not encrypt with SSE-KMS by default (Scaleway cannot export to
    such a bucket)."""
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
    if export and await asyncio.to_thread(bucket_uses_kms, s3, bucket):
        raise OperationError(f"the staging bucket {bucket} encrypts objects with SSE-KMS by "
                             f"default, and Scaleway cannot export to such a bucket: remove "
                             f"its default encryption or use another bucket")


def bucket_uses_kms(s3: Any, bucket: str) -> bool:
    """Whether the bucket's default encryption is SSE-KMS (unknown, or none: False)."""
    try:
        config = s3.get_bucket_encryption(Bucket=bucket)
    except (ClientError, BotoCoreError):   # none set, or not ours to read: nothing to refuse
        return False
    rules = config.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    return any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") == "aws:kms"
               for r in rules)


async def _get_volume(apis: Apis, zone: str, volume_id: str) -> Any:
    """The volume to back up; refused at once if it cannot be exported."""
    try:
        vol = await asyncio.to_thread(apis.block.get_volume, volume_id=volume_id, zone=zone)
    except ScalewayException as exc:
        raise _volume_error(exc, volume_id, zone, "reading the volume") from None
    kind = str(vol.type_)
    if kind in LEGACY_TYPES or str(getattr(vol.specs, "class_", "") or "") == "bssd":
        raise OperationError(f"volume {vol.name} ({vol.id}) cannot be backed up: it is "
                             f"{LEGACY_TYPES.get(kind, LEGACY_TYPES['b_ssd'])}")
    refusal = export_refusal(int(vol.size or 0))
    if refusal:
        raise OperationError(f"volume {vol.name} ({vol.id}) cannot be backed up: {refusal}")
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
    """``in_use`` (an image or a volume links to it) is as settled as ``available``."""
    if "available" in done:
        done = done | {"in_use"}

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
    async def get() -> Any:
        try:
            return await asyncio.to_thread(fetch)
        except ScalewayException as exc:
            if is_not_found(exc):
                raise OperationError(f"{what} disappeared while we waited for it "
                                     f"({scw_message(exc)}); was it deleted? retry") from None
            raise describe(exc, f"checking {what}") from None

    def finished(obj: Any) -> bool:
        status = str(obj.status)
        if status not in done and status not in pending:
            raise OperationError(f"{what} went to status {status!r}: Scaleway could not "
                                 f"complete it; nothing was kept, retry or contact support")
        return status in done

    def gave_up(obj: Any) -> OperationError:
        return OperationError(f"gave up on {what} after {timeout:.0f} s (still {obj.status}); "
                              f"retry later, a later backup reuses a finished export")

    return await poll(get, finished, timeout=timeout, policy=t.poll, on_timeout=gave_up)


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
    return warnings


async def _delete_snapshot(apis: Apis, zone: str, snapshot_id: str, t: Timeouts) -> list[str]:
    # A snapshot being created or exported cannot be deleted yet: let it settle first, and try
    # again while the API still calls it busy (409/412).
    # In use (a volume being made from it): deleting waits until the volume is made.
    async def attempt() -> None:
        with contextlib.suppress(OperationError):
            await _wait(lambda: apis.block.get_snapshot(snapshot_id=snapshot_id, zone=zone),
                        {"available", "error"}, {"creating", "exporting", "in_use"},
                        min(t.export, 3600), f"the snapshot {snapshot_id}", t)
        await asyncio.to_thread(apis.block.delete_snapshot, snapshot_id=snapshot_id, zone=zone)

    busy = RetryPolicy(attempts=5, base=t.poll_min, cap=t.poll_max, floor=t.poll_min)
    try:
        await busy.call_async(attempt, lambda exc: status_of(exc) in (409, 412))
    except ScalewayException as exc:
        if not is_not_found(exc):
            return [f"could not delete snapshot {snapshot_id} in {zone}: {scw_message(exc)}"]
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
                            volume_id: str | None = None, timeouts: Timeouts | None = None,
                            lease: Lease | None = None,
                            dead_owners: frozenset[str] = frozenset(),
                            zones: Sequence[str] | None = None) -> list[str]:
    """Remove temporaries of crashed runs: snapshots tagged ``strongroom-temp`` in ``zone`` (or
    in each of ``zones``), objects and multipart uploads under ``strongroom-tmp/`` in
    ``bucket``. Never what a live lease holds (the caller's or another run's, in any process);
    what only expired leases name, whatever its age; what no lease names (made before leases)
    when older than ``min_age`` seconds, or of ``volume_id`` whatever its age. Expired lease
    objects whose temporaries are all gone go too. ``lease``: the calling run's, which claims
    what it sweeps (a standalone sweep takes a lease of its own for that). ``dead_owners``:
    runs known to be dead before their leases run out (a restarted daemon's interrupted jobs),
    whose leases count as expired; so do those whose process is known gone
    (``engine.scaleway.leases.process_gone``). Returns what was removed."""
    swept = await sweep_leftovers(client, zone, bucket, min_age=min_age, volume_id=volume_id,
                                  timeouts=timeouts, lease=lease, dead_owners=dead_owners,
                                  zones=zones)
    return swept.removed


@dataclass
class Swept:
    """What a sweep removed, and the snapshots it would have removed but for being busy
    (still being made, exported, or used to make a volume)."""

    removed: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


async def sweep_leftovers(client: Any, zone: str, bucket: str, *, min_age: float = 3600.0,
                          volume_id: str | None = None, timeouts: Timeouts | None = None,
                          lease: Lease | None = None, dead_owners: frozenset[str] = frozenset(),
                          zones: Sequence[str] | None = None, settle: bool = False) -> Swept:
    """:func:`cleanup_leftovers`, saying also what is waiting. ``settle``: imported snapshots
    still being made are removed too, once they are (the sweep waits for them)."""
    apis = apis_for(client)
    t = timeouts or Timeouts()
    s3 = apis.s3(region_of(zone))
    found = await _Found.read(apis, s3, list(zones or [zone]), bucket, dead_owners, zone)
    swept = _Sweepable(found.holders, min_age, volume_id, settle)
    snaps = [s for s in found.snapshots if swept.snapshot(s)]
    keys = [o["Key"] for o in found.objects if swept.object(o, found.snapshot_of(o["Key"]))]
    uploads = [u for u in found.uploads if swept.upload(u)]
    out = Swept(waiting=[s.id for s in found.snapshots if swept.waiting(s)])
    sweeper = lease or Lease(apis, zone, bucket, s3, job="sweep", terms=t.lease_terms)
    ids = [s.id for s in snaps]
    try:
        if found.bucket_exists and (snaps or keys or uploads):
            # Adopting and sweeping both claim first: of two at once, one lets go.
            contested = await sweeper.claim(keys + [u["Key"] for u in uploads], ids)
            snaps = [s for s in snaps if s.id not in contested]
            keys = [k for k in keys if k not in contested]
            uploads = [u for u in uploads if u["Key"] not in contested]
        for snap in snaps:
            if await _sweep_snapshot(apis, str(snap.zone), snap.id, found.holders, t):
                out.removed.append(f"snapshot {snap.id}")
        for key in keys:
            with contextlib.suppress(ClientError, BotoCoreError):
                await asyncio.to_thread(s3.delete_object, Bucket=bucket, Key=key)
                out.removed.append(f"s3://{bucket}/{key}")
        for up in uploads:
            with contextlib.suppress(ClientError, BotoCoreError):
                await asyncio.to_thread(s3.abort_multipart_upload, Bucket=bucket, Key=up["Key"],
                                        UploadId=up["UploadId"])
                out.removed.append(f"upload s3://{bucket}/{up['Key']}")
        out.removed += await _sweep_leases(s3, bucket, found, out.removed, sweeper.owner)
    finally:
        sweeper.drop(keys + [u["Key"] for u in uploads], ids)
        if lease is None:
            await sweeper.release()
    return out


@dataclass
class _Found:
    """Temporaries listed for a sweep, and every lease, read after them (what is listed was
    leased before it was made, so its lease is among those read)."""

    snapshots: list[Any]
    objects: list[dict[str, Any]]
    uploads: list[dict[str, Any]]
    holders: Holders
    bucket_exists: bool = True

    @classmethod
    async def read(cls, apis: Apis, s3: Any, zones: list[str], bucket: str,
                   dead: frozenset[str] = frozenset(), main: str = "") -> "_Found":
        """``zones``: where to list snapshots; a zone that cannot be listed is skipped, unless
        it is ``main`` (the caller's own)."""
        snaps: list[Any] = []
        for zone in zones:
            try:
                snaps += await asyncio.to_thread(_temp_snapshots, apis, zone)
            except ScalewayException as exc:
                if zone == main or len(zones) == 1:
                    raise describe(exc, f"listing snapshots in {zone}") from None
        try:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                 Prefix=TEMP_PREFIX)
            objects = await asyncio.to_thread(
                lambda: [o for page in pages for o in page.get("Contents", [])])
            uploads = await asyncio.to_thread(s3.list_multipart_uploads, Bucket=bucket,
                                              Prefix=TEMP_PREFIX)
            holders = await asyncio.to_thread(read_holders, s3, bucket, dead)
        except ClientError as exc:
            if is_not_found(exc):  # no bucket: only the snapshots' own tags can say
                return cls(snaps, [], [], Holders([], dead=dead), bucket_exists=False)
            raise describe(exc, f"listing bucket {bucket}") from None
        return cls(snaps, objects, uploads.get("Uploads", []), holders)

    def snapshot_of(self, key: str) -> Any:
        """The snapshot an export object was made from, when it is listed here."""
        snap_id = key.rsplit("/", 1)[-1].removesuffix(".qcow2")
        return next((s for s in self.snapshots if s.id == snap_id), None)


def _temp_snapshots(apis: Apis, zone: str) -> list[Any]:
    """Temporary snapshots of every project the key can see. Blocking. A snapshot list covers
    one project (the SDK fills in the profile's default project when none is given), and a
    flow makes its snapshot in the volume's own project."""
    try:
        projects = [p.id for p in apis.account.list_projects_all()]
    except ScalewayException as exc:
        if status_of(exc) not in (401, 403):
            raise
        projects = [apis.client.default_project_id]  # a key that may not list projects
    snaps = []
    for project in dict.fromkeys(projects):
        snaps += apis.block.list_snapshots_all(zone=zone, project_id=project,
                                               include_deleted=False, tags=[TEMP_TAG])
    return [s for s in snaps if TEMP_TAG in (s.tags or [])]


@dataclass
class _Sweepable:
    """Which temporaries a sweep may remove (see :func:`cleanup_leftovers`)."""

    holders: Holders
    min_age: float
    volume_id: str | None
    settle: bool = False  # imports still being made count: removing them waits for them

    def _rule(self, claim: Claim, of_volume: bool, when: Any) -> bool:
        if claim.holder is not None:
            return False
        return claim.leased or of_volume or self._old(when)

    def _old(self, when: Any) -> bool:
        if when is None:
            return True
        if isinstance(when, str):
            when = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        return time.time() - when.timestamp() >= self.min_age

    def _snapshot_rule(self, snap: Any) -> bool:
        of_volume = self.volume_id is not None and \
            getattr(snap.parent_volume, "id", None) == self.volume_id
        return self._rule(self.holders.for_snapshot(snap.id, snap.tags or []), of_volume,
                          snap.created_at)

    @staticmethod
    def _busy(snap: Any) -> bool:
        # someone's export may still be writing, or a volume is being made of it
        return str(snap.status) in ("creating", "exporting", "in_use")

    def snapshot(self, snap: Any) -> bool:
        if self._busy(snap) and not (self.settle and str(snap.status) == "creating"
                                     and snap.parent_volume is None):
            return False
        return self._snapshot_rule(snap)

    def waiting(self, snap: Any) -> bool:
        """Would go, but for being busy."""
        return self._busy(snap) and not self.snapshot(snap) and self._snapshot_rule(snap)

    def object(self, obj: dict[str, Any], snap: Any) -> bool:
        key = obj["Key"]
        if key.startswith(LEASE_PREFIX):
            return False  # lease objects go by their own rule
        claim = self.holders.for_key(key)
        if snap is not None:
            claim |= self.holders.for_snapshot(snap.id, snap.tags or [])
        of_volume = self.volume_id is not None and \
            key.startswith(f"{TEMP_PREFIX}{self.volume_id}/")
        return self._rule(claim, of_volume, obj["LastModified"])

    def upload(self, up: dict[str, Any]) -> bool:
        return self._rule(self.holders.for_key(up["Key"]), False, up.get("Initiated"))


async def _sweep_snapshot(apis: Apis, zone: str, snapshot_id: str, holders: Holders,
                          t: Timeouts) -> bool:
    """Delete a leftover snapshot unless it was taken over since it was listed (its tags say
    so at once; a run in another bucket writes its lease object there). True if deleted."""
    try:
        snap = await asyncio.to_thread(apis.block.get_snapshot, snapshot_id=snapshot_id,
                                       zone=zone)
    except ScalewayException:
        return False  # gone already, or unreadable: not ours to force
    if holders.for_snapshot(snap.id, snap.tags or []).holder is not None:
        return False
    return not await _delete_snapshot(apis, zone, snapshot_id, t)


async def _sweep_leases(s3: Any, bucket: str, found: _Found, removed: list[str],
                        me: str) -> list[str]:
    """Expired lease objects that no longer mark anything: while a temporary they name is still
    there and no live lease holds it, the expired lease is what says it is a dead run's. A
    snapshot whose tags name the owner counts as named: a run killed before its lease object
    named a new snapshot (an import) leaves tags that look live for the rest of the lease, and
    only the dead owner's lease object says otherwise."""
    gone = {r.rsplit(" ", 1)[-1] for r in removed}
    unheld = ({f"s3://{bucket}/{o['Key']}" for o in found.objects
               if found.holders.for_key(o["Key"]).holder is None}
              | {f"s3://{bucket}/{u['Key']}" for u in found.uploads
                 if found.holders.for_key(u["Key"]).holder is None}
              | {s.id for s in found.snapshots
                 if found.holders.for_snapshot(s.id, s.tags or []).holder is None}) - gone
    out = []
    for rec in found.holders.expired():
        named = ({f"s3://{bucket}/{k}" for k in rec.keys} | set(rec.snapshots)
                 | {s.id for s in found.snapshots
                    if (tag_lease(s.tags or []) or ("",))[0] == rec.owner})
        if rec.owner == me or named & unheld:
            continue
        with contextlib.suppress(ClientError, BotoCoreError):
            await asyncio.to_thread(s3.delete_object, Bucket=bucket, Key=lease_key(rec.owner))
            out.append(f"s3://{bucket}/{lease_key(rec.owner)}")
    return out
