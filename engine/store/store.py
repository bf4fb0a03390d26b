"""The Store: opening and creating stores, and the operations other areas call."""
from __future__ import annotations

import io
import json
import os
import sqlite3
import stat as statmod
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import BinaryIO, TypeVar

from engine.errors import OperationError, UsageError
from engine.units import plural, utc_time
from engine.store.backends import Backend, NotFound, TempFile, is_disk_full, open_backend
from engine.store.archiver import BackupJob, ChunkerParams
from engine.store.check import run_check
from engine.store import keyahead
from engine.store.crypto import (IntegrityError, Keys, Sealer, kdf_params, make_key_file,
                                 unwrap_key_file)
from engine.store.index import (IndexCache, cache_error, is_busy, is_damaged,
                                 unwritable_notice)
from engine.store.locks import StoreLock
from engine.store.pruner import MAX_UNUSED_DEFAULT, Pruner
from engine.store.repository import BlobReader
from engine.store.refs import LATEST, match_ref
from engine.store.restorer import (ImageReader, is_stream_target, restore_to_path,
                                   restore_to_stream)
from engine.store.retention import UTC, GroupBy, KeepPolicy, apply_policy, group_snapshots
from engine.store.snapshot import (BackupResult, CheckReport, ForgetGroup, ForgetReport,
                                   KeptSnapshot, Manifest, PruneReport, RemovedSnapshot,
                                   RestoreResult, SnapshotInfo, now_iso, snapshot_ad,
                                   snapshot_name)

FORMAT_VERSION = 1
CONFIG = "config"
KEY = "keys/default"
DEFAULT_CHUNKER = ChunkerParams(avg=64 * 1024, min=16 * 1024, max=256 * 1024)
Progress = Callable[[int, int], None]
T = TypeVar("T")


def _check_format(version: object, url: str) -> None:
    """FORMAT.md §14: a reader refuses every version it does not know. The version is a JSON
    integer: ``"1"``, ``1.0`` or ``true`` are not format 1 (UsageError, exit 2)."""
    if type(version) is int and version == FORMAT_VERSION:
        return
    if type(version) is int and version > FORMAT_VERSION:
        raise UsageError(f"the store at {url} has format {version}, newer than this "
                         f"strongroom supports ({FORMAT_VERSION}): upgrade strongroom")
    shown = json.dumps(version)[:40]
    raise UsageError(f"the store at {url} has format {shown}, which no strongroom knows (this "
                     f"one reads format {FORMAT_VERSION}): its config file is damaged or not "
                     "ours; refusing to open it")


class Store:
    def __init__(self, backend: Backend, config: dict, keys: Keys):
        self.backend, self.config, self.keys = backend, config, keys
        self.url = backend.url
        self.id: str = config["id"]
        ch = config["chunker"]
        self.chunker = ChunkerParams(avg=ch["avg"], min=ch["min"], max=ch["max"])
        self.sealer = Sealer(keys.data)
        self._cache: IndexCache | None = None
        self._manifests: dict[str, Manifest | Exception] | None = None
        self._from_cache: set[str] = set()  # manifests read from the local cache, not the store
        self._synced = False
        self._sync_problems: list[str] = []
        # What became of the local cache (damaged and rebuilt, or unusable), one line each:
        # the drivers show them (take_notices), operations add them to their warnings.
        self.notices: list[str] = []

    # ---- creating and opening ------------------------------------------------------------
    @classmethod
    def init(cls, url: str, passphrase: str, *, chunk_avg: int | None = None,
             profile: str | None = None, create_bucket: bool = False) -> "Store":
        """``profile``, ``create_bucket``: for a store on Object Storage (backends.open_backend)."""
        if not passphrase:
            raise UsageError("an empty passphrase is not allowed")
        backend = open_backend(url, profile=profile, create_bucket=create_bucket)
        if backend.exists():
            if backend.stat(CONFIG) is not None:
                raise UsageError(f"a store already exists at {backend.url}")
            leftovers = [st.name for st in backend.list("")]
            if not _half_made(leftovers):
                raise UsageError(f"{backend.url} is not empty and not a store: choose an empty "
                                 "or new folder")
            # An init that stopped before its config: nothing is stored yet, start again.
            for name in leftovers:
                backend.delete(name)
            backend.remove_dead_temp_files()
        chunker = DEFAULT_CHUNKER
        if chunk_avg:
            if not 1024 <= chunk_avg <= 1024 * 1024:
                raise UsageError("chunk size must be between 1 KiB and 1 MiB")
            chunker = ChunkerParams(chunk_avg, chunk_avg // 4, chunk_avg * 4)
        try:
            backend.create()
            master = os.urandom(32)
            # exclusive: a second init racing this one fails instead of replacing our key
            key_raw = make_key_file(master, passphrase)
            backend.put(KEY, key_raw, exclusive=True)
            config = {"strongroom_store": FORMAT_VERSION, "id": os.urandom(16).hex(),
                      "created": now_iso(), "chunker": chunker.as_dict(),
                      "cipher": "aes-256-gcm", "chunk_id": "blake3-keyed",
                      "compression": "zstd"}
            backend.put(CONFIG, (json.dumps(config, indent=2) + "\n").encode(), exclusive=True)
        except FileExistsError:
            raise UsageError(f"a store already exists at {backend.url}") from None
        except OSError as exc:
            raise OperationError(f"cannot create a store at {backend.url}: "
                                 f"{exc.strerror or exc}") from None
        keyahead.remember(url, kdf_params(key_raw, backend.url))
        return cls(backend, config, Keys.from_master(master))

    @classmethod
    def open(cls, url: str, passphrase: str, *, profile: str | None = None) -> "Store":
        # Argon2id in a thread while the store is reached
        ahead = keyahead.take(url, passphrase)
        backend = open_backend(url, profile=profile)
        if not backend.exists():
            raise UsageError(f"no store at {backend.url}: run 'strongroom init' to create one, "
                             "or point --store (or STRONGROOM_STORE) at an existing store")
        try:
            raw = backend.get(CONFIG)
        except NotFound:
            names = [st.name for st in backend.list("")]
            if not names:
                raise UsageError(f"{backend.url} is empty, not a store yet: run 'strongroom "
                                 "init' to create one there, or point --store (or "
                                 "STRONGROOM_STORE) at an existing store") from None
            if _half_made(names):
                raise UsageError(f"the store at {backend.url} was never finished (its creation "
                                 "stopped before the config file was written; nothing is stored "
                                 "in it): run 'strongroom init' again") from None
            raise UsageError(f"{backend.url} is not a strongroom store (it has no config file): "
                             "check --store (or STRONGROOM_STORE)") from None
        except (IsADirectoryError, PermissionError) as exc:
            raise UsageError(f"cannot read the store at {backend.url}: {exc.strerror}") from None
        try:
            config = json.loads(raw)
            version = config["strongroom_store"]
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{backend.url} is not a strongroom store (its config file is not "
                             "one of ours)") from None
        _check_format(version, backend.url)
        try:
            key_raw = backend.get(KEY)
        except NotFound:
            raise UsageError(f"the store at {backend.url} has no key file ({KEY}): "
                             "it cannot be opened") from None
        master = unwrap_key_file(key_raw, passphrase, backend.url, ahead.kek)
        return cls(backend, config, Keys.from_master(master))

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- index and snapshots -------------------------------------------------------------
    @property
    def cache(self) -> IndexCache:
        if self._cache is None:
            self._cache = IndexCache(self.id)
            if self._cache.notice:
                self.notices.append(self._cache.notice)
        return self._cache

    def take_notices(self) -> list[str]:
        notices, self.notices = self.notices, []
        return notices

    def _cache_failed(self, exc: sqlite3.DatabaseError) -> None:
        """The local cache failed under us: a damaged one is deleted and built anew from the
        store, one that cannot be written is replaced by one in memory."""
        if is_busy(exc):
            raise exc
        old, self._cache = self._cache, None
        self._synced = False
        if old is None:
            raise exc
        try:
            old.close()
        except sqlite3.Error:
            pass
        if is_damaged(exc) and not old.memory:
            try:
                old.discard()
            except OSError as gone:
                exc = gone  # type: ignore[assignment]
            else:
                self._cache = IndexCache(self.id)
                self.notices.append(self._cache.notice or
                                    f"the local cache {old.path} was damaged "
                                    f"({cache_error(exc)}): rebuilt it from the store")
                return
        self._cache = IndexCache(self.id, old.path, memory=True)
        self.notices.append(unwritable_notice(old.path, exc))

    def _with_cache(self, fn: Callable[[], T]) -> T:
        """``fn`` (which uses the cache), once more on a new cache if the cache failed."""
        try:
            return fn()
        except sqlite3.DatabaseError as exc:
            self._cache_failed(exc)
            return fn()

    def _late_cache_failure(self, exc: sqlite3.DatabaseError) -> OperationError:
        """The cache failed in the middle of an operation: make it usable, and say so."""
        self._cache_failed(exc)
        return OperationError(f"the local cache failed during the operation "
                              f"({cache_error(exc)}): {self.take_notices()[-1]}; the store is "
                              "not affected: run the command again")

    def _sync(self, force: bool = False) -> None:
        if force or not self._synced:
            self._sync_problems = self._with_cache(
                lambda: self.cache.sync(self.backend, self.sealer))
            self._synced = True

    def _load_manifests(self, fresh: bool = False) -> dict[str, Manifest | Exception]:
        """Every snapshot's manifest (or the error met reading it). Snapshot files are
        immutable, so their sealed bytes are kept in the local cache; ``fresh`` re-reads them
        all from the store (check does)."""
        if self._manifests is None or fresh:
            self._manifests = self._with_cache(lambda: self._read_manifests(fresh))
        return self._manifests

    def _read_manifests(self, fresh: bool) -> dict[str, Manifest | Exception]:
        found: dict[str, Manifest | Exception] = {}
        cached = self.cache.sealed_manifests()
        kept = {} if fresh else cached
        self._from_cache = set()
        for st in self.backend.list("snapshots/"):
            snap_id = st.name.rsplit("/", 1)[-1]
            try:
                sealed = kept.get(snap_id)
                if sealed is None:
                    sealed = self.backend.get(st.name)
                else:
                    self._from_cache.add(snap_id)
                plain = self.sealer.open_object(sealed, snapshot_ad(snap_id),
                                                f"snapshot {snap_id[:12]}")
                found[snap_id] = Manifest.decode(snap_id, plain)
                if snap_id not in kept:
                    self.cache.keep_manifest(snap_id, sealed)
            except NotFound:  # forgotten meanwhile
                continue
            except (IntegrityError, ValueError, KeyError) as exc:
                found[snap_id] = exc
        gone = cached.keys() - found.keys()
        if gone:
            self.cache.drop_manifests(gone)
        return found

    def snapshots(self, reload: bool = False) -> list[SnapshotInfo]:
        """``reload``: list the store again (another process may have added or forgotten
        some since); manifests already known still come from the local cache."""
        if reload:
            self._manifests = None
        self._load_manifests()
        verified = self._with_cache(lambda: self.cache.verified())
        infos = []
        for snap_id, m in self._load_manifests().items():
            if isinstance(m, Manifest):
                m.info.last_verified = verified.get(snap_id)
                infos.append(m.info)
        return sorted(infos, key=lambda i: (i.time, i.id))

    def damaged_snapshots(self) -> dict[str, str]:
        """The snapshots whose manifest cannot be read (id: why). A manifest kept in the local
        cache is not re-read here: ``check`` reads the store's copy of every one."""
        return {snap_id: str(m) for snap_id, m in self._load_manifests().items()
                if isinstance(m, Exception)}

    def _manifest(self, ref: str) -> Manifest:
        info = self.resolve(ref)
        m = self._load_manifests()[info.id]
        assert isinstance(m, Manifest)
        return m

    def resolve(self, ref: str) -> SnapshotInfo:
        """The snapshot ``ref`` names; a damaged one is an OperationError that says so (not
        "no such snapshot")."""
        infos = self.snapshots()
        key = ref.strip().lower()
        damaged = ({} if key.startswith(LATEST) else
                   {i: why for i, why in self.damaged_snapshots().items() if i.startswith(key)})
        try:
            found = match_ref(ref, infos, self.url)
        except UsageError:
            if len(damaged) != 1 or len(key) < 6:
                raise
            snap_id, why = next(iter(damaged.items()))
            raise OperationError(f"snapshot {snap_id[:12]} is damaged: its manifest cannot be "
                                 f"read ({why}); run 'strongroom check'") from None
        if damaged:
            raise UsageError(f"snapshot prefix {key} is ambiguous ({len(damaged) + 1} snapshots "
                             "match, damaged ones included): give more characters")
        return found

    def _store_copy_problem(self, snap_id: str) -> str | None:
        """Why the store's own copy of a manifest read from the local cache is not usable (or
        None when it is the same, sound file)."""
        if snap_id not in self._from_cache:
            return None
        try:
            sealed = self.backend.get(snapshot_name(snap_id))
            plain = self.sealer.open_object(sealed, snapshot_ad(snap_id),
                                            f"snapshot {snap_id[:12]}")
            Manifest.decode(snap_id, plain)
        except NotFound:
            return "it is no longer in the store"
        except (IntegrityError, ValueError, KeyError) as exc:
            return f"the store's copy is damaged ({exc})"
        return None

    # ---- operations ----------------------------------------------------------------------
    def backup(self, source: BinaryIO, *, name: str = "", tags: dict[str, str] | None = None,
               source_info: dict | None = None, size_hint: int | None = None,
               progress: Progress | None = None,
               cancel: threading.Event | None = None,
               stored_progress: Callable[[int], None] | None = None,
               time: str | None = None) -> BackupResult:
        """Back up a readable binary stream as a new snapshot (shared lock: backups may run
        concurrently). ``progress(done, total)`` is called from this thread; ``total`` is 0
        when unknown. ``stored_progress(stored)`` follows the new bytes written so far, so a
        live dedup ratio can be shown: it is called (quick, please) from the upload threads as
        each pack lands, in order, and once more with the final figure. ``time``: record the
        snapshot at this ISO 8601 time instead of now (restic's ``--time``). Raises
        OperationError (disk full, cancelled, store unwritable)."""
        when = utc_time(time) if time else None
        total = size_hint if size_hint is not None else _stream_size(source)
        try:
            with self._lock(exclusive=False) as lock:
                self.backend.remove_dead_temp_files()
                self._sync(force=True)
                job = BackupJob(self.backend, self.keys, self.cache, self.chunker)
                info, nbytes = job.run(source, name=name, tags=tags or {},
                                       source_info=source_info or {}, total=total or 0,
                                       progress=progress, cancel=cancel,
                                       stored_progress=stored_progress,
                                       still_locked=lock.check, when=when)
        except sqlite3.DatabaseError as exc:
            raise self._late_cache_failure(exc) from None
        except OSError as exc:
            if is_disk_full(exc):
                raise OperationError(f"disk full while writing to the store {self.url}: free "
                                     "some space and run the backup again") from None
            raise OperationError(f"cannot write to the store {self.url}: "
                                 f"{exc.strerror or exc}") from None
        self._manifests = None
        return BackupResult(snapshot=info, bytes=nbytes, stored_bytes=info.stored_bytes,
                            seconds=info.seconds, warnings=self.take_notices())

    def restore(self, ref: str, out: str | os.PathLike | BinaryIO, *,
                progress: Progress | None = None,
                cancel: threading.Event | None = None, sha256: bool = False) -> RestoreResult:
        """Write the image of snapshot ``ref`` to a path (temp name, holes, digest, then
        rename) or to a stream (sequential ``write`` calls with memoryviews valid only
        during the call, as for any io writer). Everything read is verified; a damaged
        snapshot raises OperationError, and a path target is then left untouched."""
        manifest = self._manifest(ref)
        started = time.monotonic()
        warnings = []
        problem = self._store_copy_problem(manifest.info.id)
        if problem:
            warnings.append(f"snapshot {manifest.info.id[:12]}: {problem}; restored with the "
                            "copy of its manifest in the local cache (run 'strongroom check')")
        with self._lock(exclusive=False) as lock:
            self._sync()
            reader = self._reader()
            short = manifest.info.id[:12]
            try:
                if is_stream_target(out):
                    if isinstance(out, (str, os.PathLike)):
                        with open(out, "wb") as stream:
                            image_sha = restore_to_stream(reader, manifest, stream, progress,
                                                          cancel, lock.check, sha256=sha256)
                    else:
                        image_sha = restore_to_stream(reader, manifest, out, progress, cancel,
                                                      lock.check, sha256=sha256)
                    target = "stream" if not isinstance(out, (str, os.PathLike)) else str(out)
                else:
                    image_sha = restore_to_path(reader, manifest, Path(out), progress, cancel,
                                                lock.check, sha256=sha256)
                    target = str(out)
            except sqlite3.DatabaseError as exc:
                raise self._late_cache_failure(exc) from None
            except IntegrityError as exc:
                what = ("the output is incomplete" if is_stream_target(out)
                        else "no output file was written")
                raise OperationError(f"snapshot {short} is damaged: {exc} ({what}; run "
                                     "'strongroom check --read-data')") from None
            except OSError as exc:
                if is_disk_full(exc):
                    raise OperationError(f"disk full while restoring snapshot {short}: free "
                                         "some space and try again") from None
                raise
        try:
            self.cache.set_verified(manifest.info.id, now_iso())
        except sqlite3.DatabaseError as exc:
            self._cache_failed(exc)  # the image is written: only a date is lost
        warnings += self.take_notices()
        return RestoreResult(snapshot=manifest.info, bytes=manifest.info.bytes,
                             seconds=round(time.monotonic() - started, 3), target=target,
                             warnings=warnings, sha256=image_sha)

    def open_image(self, ref: str) -> ImageReader:
        """A seekable, read-only view of the image (keep the store open while using it)."""
        manifest = self._manifest(ref)
        self._sync()
        return ImageReader(self._reader(), manifest)

    def check(self, read_data: bool = False, progress: Progress | None = None) -> CheckReport:
        """Structure (config, keys, index vs packs' TOCs, manifests and their chunks); with
        ``read_data`` every indexed blob is read, authenticated, decompressed and re-hashed."""
        with self._lock(exclusive=False) as lock:
            self._sync(force=True)
            manifests = self._load_manifests(fresh=True)
            # The index is read from the store itself (its deltas, and the packs' own tables of
            # contents), never from the local cache: a cache that is wrong must not make the
            # store look damaged. A cache that disagrees is rebuilt.
            index = IndexCache(self.id, memory=True)
            problems = index.sync(self.backend, self.sealer)
            warnings = self._cross_check_cache(index)
            reader = BlobReader(self.backend, self.keys, index,
                                refresh=lambda: index.sync(self.backend, self.sealer) and None)
            bad: set[tuple[bytes, int, str]] = set()
            report = run_check(reader, manifests, read_data, problems, progress, lock.check,
                               bad)
            index.close()
            if read_data and bad:
                self._with_cache(lambda: self.cache.forget_blobs(bad))
                warnings.append(
                    f"{len(bad)} damaged or missing blob cop{'y' if len(bad) == 1 else 'ies'} "
                    "taken out of the local index: the next backup of the same data stores "
                    "them again, which makes the snapshots that need them whole again")
            report.warnings += [_temp_warning(t) for t in self.backend.temp_files()]
        if read_data:
            when = now_iso()
            for snap_id in manifests:
                if snap_id not in report.damaged_snapshots:
                    self._with_cache(lambda: self.cache.set_verified(snap_id, when))
        report.warnings += warnings + self.take_notices()
        return report

    def _cross_check_cache(self, index: IndexCache) -> list[str]:
        """Compare the local cache with an index read from the store just now (the packs the
        latter knows: a backup may add some meanwhile); rebuild a cache that disagrees."""
        packs = index.known_packs()
        taken_out = self._with_cache(lambda: self.cache.damaged())  # by an earlier check
        if self._with_cache(lambda: self.cache.fingerprint(packs)) == \
                index.fingerprint(packs, taken_out):
            return []
        path = self.cache.path
        self._cache_failed(sqlite3.DatabaseError("it disagrees with the store's index"))
        self._sync(force=True)
        notice = self.take_notices()
        return [f"the local cache {path} disagreed with the store's index: rebuilt it"
                if not self.cache.memory else notice[-1]]

    def plan_forget(self, policy: KeepPolicy, group_by: GroupBy = "volume", tz: tzinfo = UTC,
                    now: datetime | None = None) -> list[ForgetGroup]:
        """What ``policy`` keeps (with reasons) and removes in each group of snapshots; changes
        nothing. A group the policy would empty is returned as such: ``forget`` refuses it."""
        groups = []
        for key, snaps in group_snapshots(self.snapshots(), group_by).items():
            group = ForgetGroup(key.label, {k: v for k, v in (
                ("kind", key.kind), ("volume_id", key.volume_id), ("zone", key.zone),
                ("name", key.name)) if v})
            for d in apply_policy(snaps, policy, tz, now):
                s = d.snapshot
                if d.keep:
                    group.keep.append(KeptSnapshot(s.id, s.time, s.name,
                                                   [str(r) for r in d.reasons], d.matches))
                else:
                    group.remove.append(RemovedSnapshot(s.id, s.time, s.name))
            groups.append(group)
        return groups

    def forget(self, refs: Sequence[str] = (), *, policy: KeepPolicy | None = None,
               group_by: GroupBy = "volume", tz: tzinfo = UTC, dry_run: bool = False,
               now: datetime | None = None) -> ForgetReport:
        """Remove the named snapshots, or those that ``policy`` does not keep (restic's rules,
        group by group). Refuses (UsageError, nothing removed) an empty policy and a policy that
        would remove every snapshot of a group. Only snapshot files go: ``prune`` gives the
        space of the data no snapshot needs any more back."""
        if refs and policy is not None:
            raise UsageError("give snapshots to remove or keep rules, not both")
        if not refs and (policy is None or policy.empty):
            raise UsageError("no keep rule given (such as --keep-last 7): refusing to remove "
                             "every snapshot; name snapshots to remove them one by one")
        if refs:
            infos: list[SnapshotInfo] = []
            for ref in refs:
                info = self.resolve(ref)
                if info not in infos:
                    infos.append(info)
            groups = [ForgetGroup("named snapshots", {"kind": "named"}, [],
                                  [RemovedSnapshot(i.id, i.time, i.name) for i in infos])]
        else:
            assert policy is not None
            groups = self.plan_forget(policy, group_by, tz, now)
            emptied = [g for g in groups if g.remove and not g.keep]
            if emptied:
                names = ", ".join(f"{g.label} ({plural(len(g.remove), 'snapshot')})" for g in emptied)
                raise UsageError(f"the policy would remove every snapshot of {names}: nothing "
                                 "was removed; keep at least one (such as --keep-last 1)")
        report = ForgetReport(dry_run=dry_run, groups=groups)
        doomed = [r.id for g in groups for r in g.remove]
        if dry_run or not doomed:
            return report
        with self._lock(exclusive=False) as lock:
            for snap_id in doomed:
                lock.check()
                self.backend.delete(snapshot_name(snap_id))
                report.removed.append(snap_id)
        self._manifests = None
        self.cache.drop_manifests(doomed)
        return report

    def prune(self, *, dry_run: bool = False, max_unused: float = MAX_UNUSED_DEFAULT,
              ignore_snapshots: set[str] | frozenset[str] = frozenset(),
              phase: Callable[[str, int], None] | None = None,
              progress: Progress | None = None,
              cancel: threading.Event | None = None) -> PruneReport:
        """Give back the space of data that no snapshot needs: delete packs nothing needs,
        repack those whose unneeded share is above ``max_unused`` percent, consolidate the
        index. Runs beside backups (a prune lock: see docs/FORMAT.md, "Prune"); packs that a
        running operation might still use are deleted by a later prune. ``dry_run`` changes
        nothing and says what would be done; ``ignore_snapshots`` (dry runs only) are counted
        as gone (what ``forget --dry-run --prune`` would give back)."""
        if ignore_snapshots and not dry_run:
            raise ValueError("ignore_snapshots is for dry runs")
        load = (self._reload_manifests if not ignore_snapshots else
                lambda: {k: v for k, v in self._reload_manifests().items()
                         if k not in ignore_snapshots})
        lock = StoreLock(self.backend, exclusive=False, prune=not dry_run, sealer=self.sealer)
        pruner: Pruner | None = None
        try:
            with lock:
                if not dry_run:
                    self.backend.remove_dead_temp_files()
                pruner = Pruner(self.backend, self.sealer, self.cache, self._reader(),
                                manifests=load, sync=self._sync_now,
                                lock=lock, own_lock=lock.name, phase=phase, progress=progress,
                                cancel=cancel)
                report = pruner.run(dry_run, max_unused)
        except OSError as exc:
            if is_disk_full(exc):
                doing = f" ({pruner.step})" if pruner is not None else ""
                raise OperationError(f"disk full while pruning the store {self.url}{doing}: "
                                     "nothing that snapshots need was lost; free some space (a "
                                     "higher --max-unused repacks less) and run prune "
                                     "again") from None
            raise OperationError(f"cannot prune the store {self.url}: "
                                 f"{exc.strerror or exc}") from None
        finally:
            self._manifests = None
        return report

    def _reload_manifests(self) -> dict[str, Manifest | Exception]:
        self._manifests = None
        return self._load_manifests()

    def _sync_now(self) -> list[str]:
        self._sync(force=True)
        return self._sync_problems

    def change_passphrase(self, new_passphrase: str) -> None:
        """Re-wrap the master key under a new passphrase (exclusive lock); data is untouched."""
        if not new_passphrase:
            raise UsageError("an empty passphrase is not allowed")
        with self._lock(exclusive=True):
            self.backend.remove_dead_temp_files()
            self.backend.put(KEY, make_key_file(self.keys.master, new_passphrase))

    def _reader(self) -> BlobReader:
        """A blob reader that re-syncs the index cache once if a blob is not where the cache
        says (a concurrent prune moved it)."""
        return BlobReader(self.backend, self.keys, self.cache,
                          refresh=lambda: self._sync(force=True))

    def _lock(self, exclusive: bool) -> StoreLock:
        return StoreLock(self.backend, exclusive, sealer=self.sealer)


def _temp_warning(temp: TempFile) -> str:
    whose = ("its writer is gone: the next backup removes it" if temp.writer_gone
             else "its writer may still be running")
    return (f"leftover temporary file {temp.name} ({temp.size} bytes, last written "
            f"{_ago(temp.age)} ago) of an interrupted write; not part of the store, {whose}")


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def _half_made(names: list[str]) -> bool:
    """Whether the files of a location without a config are only what an interrupted ``init``
    writes before its config (the key file): then ``init`` may start again there."""
    return all(name == KEY for name in names)


def _stream_size(source: BinaryIO) -> int | None:
    try:
        st = os.fstat(source.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    if statmod.S_ISREG(st.st_mode):
        return st.st_size
    if statmod.S_ISBLK(st.st_mode):  # a block device: its size is where its end is
        try:
            fd = source.fileno()
            here = os.lseek(fd, 0, os.SEEK_CUR)
            end = os.lseek(fd, 0, os.SEEK_END)
            os.lseek(fd, here, os.SEEK_SET)
            return end - here
        except OSError:
            return None
    return None
