"""The one API every driver uses: the CLI, the TUI and the daemon are thin drivers of a Session.

A Session is built from Strongroom's settings, a Scaleway profile and a store URL. It opens
the Scaleway client and the store lazily (the inventory works without a passphrase; the store
without Scaleway credentials) and gives typed calls that return the engine's own dataclasses.
Quick calls (inventory, preflight, snapshots) block and are run by drivers from a thread;
long work is a job: :meth:`Session.execute` runs a :class:`engine.jobs.JobSpec` with a
reporter, so the same job runs in this process or in the daemon.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

import platformdirs

from engine.errors import OperationError, UsageError
from engine.jobkinds import (BackupImageParams, BackupParams, CheckParams, ForgetParams,
                             PruneParams, RestoreFilesParams, RestoreImageParams, RestoreParams,
                             RunParams, params_of)
from engine.jobs import JobSpec, Reporter, blocking
from engine.settings import APP_NAME, Settings, load_settings

if TYPE_CHECKING:  # the SDK, boto3, the store and dissect are heavy: imported when first used
    from scaleway import Client

    from engine.explore import Explorer, RestoreReport
    from engine.policies.run import RunReport
    from engine.policies.status import VolumeStatus
    from engine.policies.survey import Survey
    from engine.protection import StoredVolume
    from engine.scaleway.flows import BackupOutcome, RestoreOutcome
    from engine.scaleway.inventory import ProjectInfo, VolumeInfo
    from engine.scaleway.preflight import PreflightReport
    from engine.store import Store
    from engine.store.retention import KeepPolicy
    from engine.store.snapshot import (BackupResult, CheckReport, ForgetGroup, ForgetReport,
                                       PruneReport, RestoreResult, SnapshotInfo)

T = TypeVar("T")
Passphrase = Callable[[], str]


@dataclass(frozen=True)
class VolumeLabels:
    """A volume's SLA labels and the policy that takes it (None: no policy)."""

    environment: str
    data_class: str
    policy: str | None


def default_store_url() -> str:
    return str(Path(platformdirs.user_data_dir(APP_NAME)) / "store")


def store_url_from(given: str | None, settings: Settings) -> str:
    """--store, else $STRONGROOM_STORE, else the settings' store, else the local default."""
    return (given or os.environ.get("STRONGROOM_STORE") or settings.store_url
            or default_store_url())


@dataclass
class StoreStatus:
    """Whether the store opens, and its snapshots when it does."""

    url: str
    ok: bool
    message: str = ""
    snapshots: list[SnapshotInfo] = field(default_factory=list)


class Session:
    """``passphrase`` is asked for (called) only when the store is first opened."""

    def __init__(self, settings: Settings | None = None, *, store_url: str | None = None,
                 profile: str | None = None, passphrase: Passphrase | None = None,
                 label: str = "") -> None:
        self.settings = settings or load_settings()
        self.store_url = store_url_from(store_url, self.settings)
        self.profile = profile or None
        self.label = label or profile or os.environ.get("SCW_PROFILE") or "default"
        self.organization = os.environ.get("SCW_DEFAULT_ORGANIZATION_ID", "")
        self._passphrase = passphrase
        self._store: Store | None = None
        self._client: Client | None = None
        self._lock = threading.Lock()

    # -- Scaleway ------------------------------------------------------------------------------
    def client(self) -> Client:
        with self._lock:
            if self._client is None:
                from engine.scaleway.config import scw_client
                self._client = scw_client(self.profile)
            return self._client

    def list_projects(self) -> list[ProjectInfo]:
        from engine.scaleway.inventory import list_projects
        projects = asyncio.run(list_projects(self.client()))
        if not self.organization and projects:
            self.organization = projects[0].organization_id
        return projects

    def list_zones(self, project_id: str) -> list[str]:
        """Zones where the project has volumes, in the zone table's order."""
        from engine.scaleway.config import ZONES
        volumes = self.inventory(projects=[project_id], with_backups=False)
        return sorted({v.zone for v in volumes},
                      key=lambda z: ZONES.index(z) if z in ZONES else len(ZONES))

    def list_volumes(self, project_id: str, zone: str) -> list[VolumeInfo]:
        from engine.scaleway.inventory import list_volumes
        return asyncio.run(list_volumes(self.client(), project_id, zone,
                                        self._snapshots_quietly()))

    def inventory(self, projects: list[str] | None = None, zones: list[str] | None = None,
                  with_backups: bool = True) -> list[VolumeInfo]:
        """Every volume the key can see (in every Block zone the API serves, unless ``zones``);
        with each one's last backup when the store opens."""
        from engine.scaleway.inventory import list_inventory
        store = self._store_quietly() if with_backups else None
        return asyncio.run(list_inventory(self.client(), store, projects=projects,
                                          zones=zones or None))

    def find_volume(self, ref: str, inventory: list[VolumeInfo] | None = None) -> VolumeInfo:
        """A backupable volume by id or unique name."""
        volumes = inventory if inventory is not None else self.inventory(with_backups=False)
        matches = [v for v in volumes if v.id == ref] or [v for v in volumes if v.name == ref]
        if not matches:
            raise UsageError(f"no volume {ref!r}: give an id or a name from "
                             "`strongroom inventory`")
        if len(matches) > 1:
            where = ", ".join(f"{v.id} in {v.zone}" for v in matches)
            raise UsageError(f"several volumes are named {ref!r} ({where}): give the id instead")
        volume = matches[0]
        if not volume.backupable:
            raise UsageError(f"volume {volume.name} cannot be backed up: {volume.reason}")
        return volume

    def bucket_for(self, zone: str) -> str:
        from engine.scaleway.config import region_of
        return self.settings.bucket_for(region_of(zone))

    def set_buckets(self, buckets: dict[str, str]) -> None:
        self.settings.buckets = dict(buckets)

    def preflight(self, project_id: str | None = None, zone: str | None = None,
                  bucket: str | None = None, volume_id: str | None = None) -> PreflightReport:
        """``volume_id``: also check that this volume (in ``zone``) can be exported."""
        from engine.scaleway.preflight import preflight
        return asyncio.run(preflight(self.client(), project_id=project_id, zone=zone,
                                     bucket=bucket or (self.bucket_for(zone) if zone else None),
                                     volume_id=volume_id))

    # -- the store -----------------------------------------------------------------------------
    @property
    def can_open_store(self) -> bool:
        return self._store is not None or self._passphrase is not None

    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                if self._passphrase is None:
                    raise UsageError("no passphrase: set STRONGROOM_PASSPHRASE or "
                                     "STRONGROOM_PASSPHRASE_FILE and start again")
                passphrase = self._passphrase()
                from engine.store import keyahead
                keyahead.start(self.store_url, passphrase)  # while the store's modules import
                from engine.store import Store
                self._store = Store.open(self.store_url, passphrase, profile=self.profile)
            return self._store

    def init_store(self, passphrase: str, chunk_avg: int | None = None,
                   create_bucket: bool = False) -> Store:
        """``create_bucket``: a store on Object Storage whose bucket is missing makes it."""
        from engine.store import Store
        with self._lock:
            self._store = Store.init(self.store_url, passphrase, chunk_avg=chunk_avg,
                                     profile=self.profile, create_bucket=create_bucket)
            return self._store

    def snapshots(self) -> list[SnapshotInfo]:
        return self.store().snapshots()

    def store_notices(self) -> list[str]:
        """What became of the local cache since last asked (rebuilt, or unusable), one line
        each, for the driver to show."""
        return self.store().take_notices() if self._store is not None else []

    def damaged_snapshots(self) -> dict[str, str]:
        """Snapshots whose manifest cannot be read: id → why."""
        return self.store().damaged_snapshots()

    def stored_volumes(self) -> dict[str, StoredVolume]:
        """Every volume the store holds backups of (deleted ones too), by volume id."""
        from engine.protection import stored_volumes
        return stored_volumes(self.snapshots())

    def resolve(self, ref: str, volume: str | None = None) -> SnapshotInfo:
        """The snapshot ``ref`` names: an id or prefix, ``latest:VOLUME``, or ``latest`` (with
        ``volume``: that volume's newest; alone: only when the store holds one source)."""
        from engine.store.refs import with_volume
        return self.store().resolve(with_volume(ref, volume))

    def store_status(self) -> StoreStatus:
        try:
            return StoreStatus(self.store_url, True, "", self.snapshots())
        except Exception as exc:  # shown as one line by the drivers
            return StoreStatus(self.store_url, False, " ".join(str(exc).split())
                               or type(exc).__name__)

    @contextlib.contextmanager
    def explorer(self, ref: str) -> Iterator[Explorer]:
        """The files inside a snapshot's image (keep the session open while exploring)."""
        from engine.explore import ExploreError, open_volume
        store = self.store()
        info = store.resolve(ref)
        image = store.open_image(info.id)
        try:
            try:
                explorer = open_volume(image)
            except ExploreError as exc:
                raise type(exc)(f"snapshot {info.id[:12]}: {exc}") from None
            yield explorer
        finally:
            image.close()

    def _store_quietly(self) -> Store | None:
        if not self.can_open_store:
            return None
        try:
            return self.store()
        except Exception:  # the inventory is still worth showing without backup columns
            return None

    def _snapshots_quietly(self) -> list[SnapshotInfo]:
        status = self.store_status() if self.can_open_store else None
        return status.snapshots if status is not None and status.ok else []

    # -- jobs ----------------------------------------------------------------------------------
    async def execute(self, spec: JobSpec, reporter: Reporter) -> object:
        """Run one job from its spec (what a runner calls)."""
        params = params_of(spec)
        runs: dict[type, Callable[[Reporter, object], object]] = {
            BackupParams: self.backup, RestoreParams: self.restore,
            BackupImageParams: self.backup_image, RestoreImageParams: self.restore_image,
            CheckParams: self.check, RestoreFilesParams: self.restore_files,
            ForgetParams: self.forget, PruneParams: self.prune, RunParams: self.run,
        }
        return await runs[type(params)](reporter, params)  # type: ignore[misc]

    def volume_labels(self, volumes: list[VolumeInfo]) -> dict[str, VolumeLabels]:
        """Each volume's environment, data class and policy (engine/policies/): from its tags,
        else the settings' rules, else the global default. A bad policy file: UsageError."""
        from engine.policies.config import load_config
        from engine.policies.survey import build_survey

        config = load_config(self.settings)
        projects = {p.id: p.name for p in self.list_projects()}
        survey = build_survey(config, volumes, projects, [], {})
        return {v.volume.id: VolumeLabels(v.labels.environment, v.labels.data_class,
                                          v.policy.name if v.policy else None)
                for v in survey.volumes}

    def _labelled(self, p: BackupParams) -> BackupParams:
        """``p`` with its volume's own labels, when the driver did not give them (the app's
        backups, a job from an older client): every snapshot records the same labels, whoever
        started it. A bad policy file or a volume not found: the global ones, as before."""
        try:
            volumes = [v for v in self.inventory(zones=[p.zone], with_backups=False)
                       if v.id == p.volume_id]
            labels = self.volume_labels(volumes).get(p.volume_id)
        except (UsageError, OperationError):
            return p
        if labels is None:
            return p
        return dataclasses.replace(p, environment=labels.environment,
                                   data_class=labels.data_class)

    async def backup(self, reporter: Reporter, p: BackupParams) -> BackupOutcome:
        from engine.scaleway.flows import backup_volume
        if p.environment is None and p.data_class is None:
            p = await asyncio.to_thread(self._labelled, p)
        store = await asyncio.to_thread(self.store)
        client = await asyncio.to_thread(self.client)
        settings = self.settings if p.environment is None and p.data_class is None else \
            dataclasses.replace(self.settings, environment=p.environment or "",
                                data_class=p.data_class or "")
        return await backup_volume(reporter, store=store, client=client, volume_id=p.volume_id,
                                   zone=p.zone, bucket=p.bucket or self.bucket_for(p.zone),
                                   keep=p.keep, settings=settings,
                                   job_id=reporter.job_id, snapshot_time=p.time)

    async def restore(self, reporter: Reporter, p: RestoreParams) -> RestoreOutcome:
        from engine.scaleway.flows import restore_snapshot
        store = await asyncio.to_thread(self.store)
        client = await asyncio.to_thread(self.client)
        return await restore_snapshot(reporter, store=store, client=client, ref=p.snapshot,
                                      zone=p.zone, project_id=p.project_id, name=p.name,
                                      size=p.size, iops=p.iops,
                                      bucket=p.bucket or self.bucket_for(p.zone),
                                      settings=self.settings, job_id=reporter.job_id,
                                      rename_on_clash=p.rename_on_clash)

    async def backup_image(self, reporter: Reporter, p: BackupImageParams,
                           source: BinaryIO | None = None) -> BackupResult:
        """``source``: a stream only this process has (stdin) instead of ``p.path``."""
        store = await asyncio.to_thread(self.store)
        reporter.phase("backup")

        def run(cancel: threading.Event) -> BackupResult:
            # opened in the worker: a FIFO's open blocks until its writer comes
            with contextlib.ExitStack() as stack:
                stream, info = source, {"kind": "stdin"}
                if stream is None:
                    stream = stack.enter_context(_open_image(p.path))
                    info = {"kind": "file", "path": str(Path(p.path).resolve())}
                return store.backup(stream, name=p.name, tags=dict(p.tags), source_info=info,
                                    progress=lambda done, total: reporter.progress(done, total),
                                    cancel=cancel, time=p.time)

        return await in_thread(run)

    async def restore_image(self, reporter: Reporter, p: RestoreImageParams,
                            out: BinaryIO | None = None) -> RestoreResult:
        """``out``: a stream only this process has (stdout) instead of the file ``p.out``.
        An existing file is replaced only with ``p.force``; a stream whose reader goes away
        is an error that says how much of the image was delivered."""
        store = await asyncio.to_thread(self.store)
        await asyncio.to_thread(store.resolve, p.snapshot)  # a bad name is the first error
        if out is None and not p.force and os.path.isfile(p.out):
            raise UsageError(f"{p.out} exists: give another name, or --force to replace it")
        reporter.phase("restore")
        target: BinaryIO | str = p.out if out is None else _Counting(out)

        def run(cancel: threading.Event) -> RestoreResult:
            try:
                return store.restore(p.snapshot, target, cancel=cancel, sha256=p.sha256,
                                     progress=lambda done, total: reporter.progress(done, total))
            except BrokenPipeError:
                sent = target.sent if isinstance(target, _Counting) else 0
                raise OperationError(f"the reader of the image went away after {sent} bytes: "
                                     "what it got is incomplete") from None

        return await in_thread(run)

    async def check(self, reporter: Reporter, p: CheckParams) -> CheckReport:
        store = await asyncio.to_thread(self.store)
        reporter.phase("check")
        return await in_thread(lambda cancel: store.check(
            read_data=p.read_data, progress=lambda done, total: reporter.progress(done, total)))

    def plan_forget(self, policy: KeepPolicy, group_by: str = "volume",
                    tz: str = "UTC") -> list[ForgetGroup]:
        """What a keep policy would keep (with reasons) and remove, group by group; changes
        nothing (a quick call, for previews)."""
        zone = ForgetParams(tz=tz).timezone()
        return self.store().plan_forget(policy, group_by, zone)  # type: ignore[arg-type]

    async def forget(self, reporter: Reporter, p: ForgetParams) -> ForgetReport:
        policy = None if p.snapshots else p.policy()
        zone = p.timezone()
        store = await asyncio.to_thread(self.store)
        reporter.phase("forget")

        def run(cancel: threading.Event) -> ForgetReport:
            report = store.forget(p.snapshots, policy=policy, tz=zone, dry_run=p.dry_run,
                                  group_by=p.group_by)  # type: ignore[arg-type]
            if p.prune:
                reporter.phase("prune")
                ignore = {r.id for g in report.groups for r in g.remove} if p.dry_run else set()
                report.prune = store.prune(
                    dry_run=p.dry_run, max_unused=p.max_unused, ignore_snapshots=ignore,
                    phase=lambda name, total: reporter.phase(name, total),
                    progress=lambda done, total: reporter.progress(done, total), cancel=cancel)
            return report

        return await in_thread(run)

    async def prune(self, reporter: Reporter, p: PruneParams) -> PruneReport:
        store = await asyncio.to_thread(self.store)
        reporter.phase("prune")
        return await in_thread(lambda cancel: store.prune(
            dry_run=p.dry_run, max_unused=p.max_unused,
            phase=lambda name, total: reporter.phase(name, total),
            progress=lambda done, total: reporter.progress(done, total), cancel=cancel))

    async def restore_files(self, reporter: Reporter, p: RestoreFilesParams) -> RestoreReport:
        from engine.explore import restore
        await asyncio.to_thread(self.store)
        reporter.phase("restore-files", message=p.path)

        def run(cancel: threading.Event) -> RestoreReport:
            with self.explorer(p.snapshot) as explorer:
                return restore(explorer, p.path, p.to, cancel=cancel,
                               progress=lambda done, total: reporter.progress(done, total))

        return await in_thread(run)

    # -- policies (engine/policies/) -----------------------------------------------------------
    def policy_survey(self, with_store: bool = True) -> Survey:
        """Every volume with its labels, its policy (and why), its backups and when they were
        last verified (without the store: no backups). A bad policy file is a UsageError."""
        from engine.policies.config import load_config
        from engine.policies.survey import build_survey
        from engine.policies.verification import verified_times
        config = load_config(self.settings)
        store = self._store_quietly() if with_store else None
        snapshots = store.snapshots(reload=True) if store is not None else []
        verified = verified_times(store) if store is not None else {}
        projects = {p.id: p.name for p in self.list_projects()}
        return build_survey(config, self.inventory(with_backups=False), projects, snapshots,
                            verified)

    def volume_statuses(self, now: datetime | None = None) -> list[VolumeStatus]:
        """Whether each volume meets its policy (ok, due, overdue, no policy, not
        backupable), with its last backup, last verification and new bytes per backup."""
        from engine.policies.status import statuses
        self.store()  # a status without the store's history would say "overdue" everywhere
        survey = self.policy_survey()
        survey.require_matches()
        return statuses(survey, now)

    async def run(self, reporter: Reporter, p: RunParams) -> RunReport:
        from engine.policies.run import run_policies
        return await run_policies(self, reporter, p)

    async def sweep_interrupted(self, job_id: str, spec: JobSpec) -> tuple[list[str], bool]:
        """Remove the Scaleway and S3 temporaries of a backup or restore job whose process died
        (a daemon killed mid-job): its leases count as expired at once; other runs' live
        leases are respected as always. Returns what was removed, and whether all of it is
        gone: the job's lease object names everything it made and goes last."""
        from engine.scaleway.api import apis_for, is_not_found
        from engine.scaleway.config import region_of
        from engine.scaleway.flows import cleanup_leftovers
        from engine.scaleway.leases import lease_key
        params = params_of(spec)
        if not isinstance(params, (BackupParams, RestoreParams)):
            return [], True
        apis = apis_for(await asyncio.to_thread(self.client))
        bucket = params.bucket or self.bucket_for(params.zone)
        removed = await cleanup_leftovers(apis, params.zone, bucket,
                                          dead_owners=frozenset({job_id}))
        s3 = apis.s3(region_of(params.zone))
        try:
            await asyncio.to_thread(s3.head_object, Bucket=bucket, Key=lease_key(job_id))
        except Exception as exc:  # botocore's ClientError: 404 means nothing is left
            if is_not_found(exc) or "404" in str(exc):
                return removed, True
            raise
        return removed, False

    def close(self) -> None:
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def in_thread(fn: Callable[[threading.Event], T]) -> T:
    """Run blocking work in a thread, handing it the event that tells it to stop."""
    cancel = threading.Event()
    return await blocking(lambda: fn(cancel), cancel)


class _Counting:
    """A write-only stream that counts what its destination accepted."""

    def __init__(self, out: BinaryIO) -> None:
        self._out, self.sent = out, 0

    def write(self, data: bytes | memoryview) -> int:
        written = self._out.write(data)
        self.sent += len(data) if written is None else written
        return len(data) if written is None else written

    def flush(self) -> None:
        self._out.flush()


@contextlib.contextmanager
def _open_image(path: str) -> Iterator[BinaryIO]:
    try:
        stream = open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder: give an image file (or - for stdin)") from None
    except PermissionError:
        raise UsageError(f"cannot read {path}: permission denied") from None
    with stream:
        yield stream
