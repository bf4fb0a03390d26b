"""`strongroom run`: back up every due volume, forget by the policies' keep rules, prune when
the store's unused share passes a threshold, verify what is due. Idempotent: a second run
right after the first finds nothing due.

Safe from several places at once:
- ``--shard I/N`` partitions the volumes by a stable hash of their ids, so N runs never share
  one (each also forgets only its own volumes' snapshots);
- without shards (or with overlapping launches), each backup takes a per-volume claim in the
  store (claim.py) and re-reads the store's snapshots before it starts: a volume another run
  holds or has just backed up is skipped, never backed up twice;
- prune takes the store's prune lock: a run that meets another prune skips its own;
- verification takes a claim too, so only one run reads the whole store at a time.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from engine.errors import UsageError
from engine.policies.claim import Claim, ClaimTaken
from engine.policies.config import Policy, load_config
from engine.policies.status import is_due, parse_time, verify_due
from engine.policies.survey import Survey, SurveyedVolume, build_survey
from engine.policies.verification import record_verified, verified_times
from engine.settings import Settings
from engine.store.locks import LockedError
from engine.units import plural

if TYPE_CHECKING:
    from engine.jobkinds import BackupParams, RunParams
    from engine.jobs import Reporter
    from engine.scaleway.flows import BackupOutcome
    from engine.scaleway.inventory import ProjectInfo, VolumeInfo
    from engine.store import Store


class Session(Protocol):
    """What a run needs of engine.session.Session (which imports this module)."""

    def store(self) -> Store: ...
    def inventory(self, projects: list[str] | None = None, zones: list[str] | None = None,
                  with_backups: bool = True) -> list[VolumeInfo]: ...
    def list_projects(self) -> list[ProjectInfo]: ...
    async def backup(self, reporter: Reporter, p: BackupParams) -> BackupOutcome: ...

    @property
    def settings(self) -> Settings: ...


@dataclass(frozen=True)
class Shard:
    """One of N shares of the volumes (1-based), by a stable hash of each volume's id."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        if not match:
            raise UsageError(f"bad shard {text!r}: give I/N, as 1/3 (the first of three)")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 1 <= index <= count:
            raise UsageError(f"bad shard {text!r}: I must be from 1 to N, as 1/{max(count, 1)}")
        return cls(index, count)

    def owns(self, volume_id: str) -> bool:
        digest = hashlib.sha256(volume_id.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class BackedUp:
    volume_id: str
    volume_name: str
    snapshot: str
    policy: str
    bytes: int = 0
    stored_bytes: int = 0


@dataclass
class Due:
    volume_id: str
    volume_name: str
    policy: str
    newest: str | None


@dataclass
class Skipped:
    volume_id: str
    volume_name: str
    why: str


@dataclass
class Failed:
    volume_id: str
    error: str
    volume_name: str = ""
    step: str = "backup"


@dataclass
class Forgotten:
    policy: str
    volume_id: str
    snapshot: str
    time: str


@dataclass
class RunReport:
    dry_run: bool = False
    shard: str | None = None
    policy: str | None = None
    due: list[Due] = field(default_factory=list)          # found due (a dry run's backups)
    backed_up: list[BackedUp] = field(default_factory=list)
    not_due: list[str] = field(default_factory=list)      # volume ids
    skipped: list[Skipped] = field(default_factory=list)  # not backupable, or another run's
    failed: list[Failed] = field(default_factory=list)
    forgotten: list[Forgotten] = field(default_factory=list)  # (a dry run: would be)
    prune: str = ""        # what became of prune, in words
    verify: str = ""       # what became of verification, in words

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Run:
    session: Session
    reporter: Reporter
    store: Store
    report: RunReport
    now: datetime
    time: str | None
    bucket: str | None


async def run_policies(session: Session, reporter: Reporter, p: RunParams) -> RunReport:
    shard = Shard.parse(p.shard) if p.shard else None
    config = load_config(session.settings)
    if p.policy:
        config.policy(p.policy)  # an unknown name is the first error
    store = await asyncio.to_thread(session.store)
    reporter.phase("survey")
    survey = await asyncio.to_thread(_survey, session, store, config)
    survey.require_matches()
    now = parse_time(p.time) if p.time else datetime.now(timezone.utc)
    report = RunReport(p.dry_run, str(shard) if shard else None, p.policy)
    mine = [v for v in survey.volumes if v.policy is not None
            and (not p.policy or v.policy.name == p.policy)
            and (shard is None or shard.owns(v.volume.id))]
    for v in mine:
        policy: Policy = v.policy  # type: ignore[assignment]  # every one of mine has one
        newest = v.newest.time if v.newest else None
        if not v.volume.backupable:
            report.skipped.append(Skipped(v.volume.id, v.volume.name, v.volume.reason))
        elif is_due(policy, newest, now):
            report.due.append(Due(v.volume.id, v.volume.name, policy.name, newest))
        else:
            report.not_due.append(v.volume.id)
    run = _Run(session, reporter, store, report, now, p.time, p.bucket)
    if not p.dry_run:
        await _backups(run, [v for v in mine if v.volume.id in {d.volume_id for d in report.due}],
                       max(1, p.jobs or config.run.jobs))
    await asyncio.to_thread(_forget, run, mine, p.dry_run)
    await asyncio.to_thread(_prune, run, config.run.prune_above, config.run.max_unused,
                            p.dry_run)
    await asyncio.to_thread(_verify, run, mine, p.dry_run)
    return report


def _survey(session: Session, store: Store, config: Any) -> Survey:
    volumes = session.inventory(with_backups=False)
    projects = {p.id: p.name for p in session.list_projects()}
    return build_survey(config, volumes, projects, store.snapshots(reload=True),
                        verified_times(store))


# ---------------------------------------------------------------------------------------------
# Backups

async def _backups(run: _Run, due: list[SurveyedVolume], jobs: int) -> None:
    limit = asyncio.Semaphore(jobs)

    async def one(v: SurveyedVolume) -> None:
        async with limit:
            await _backup(run, v)

    await asyncio.gather(*(one(v) for v in due))


async def _backup(run: _Run, v: SurveyedVolume) -> None:
    from engine.jobkinds import BackupParams

    policy: Policy = v.policy  # type: ignore[assignment]
    claim = Claim(run.store, v.volume.id)
    try:
        await asyncio.to_thread(claim.take)
    except ClaimTaken:
        run.report.skipped.append(Skipped(v.volume.id, v.volume.name,
                                          "another run is backing it up"))
        return
    except Exception as exc:  # the store unreachable, say: this volume fails, others go on
        run.report.failed.append(Failed(v.volume.id, _line(exc), v.volume.name, "claim"))
        return
    try:
        newest = await asyncio.to_thread(_newest, run.store, v.volume.id)
        if not is_due(policy, newest, run.now):
            run.report.not_due.append(v.volume.id)  # another run did it meanwhile
            return
        params = BackupParams(v.volume.id, v.volume.zone, v.volume.name, run.bucket,
                              time=run.time, environment=v.labels.environment,
                              data_class=v.labels.data_class)
        outcome = await run.session.backup(run.reporter, params)
        run.report.backed_up.append(BackedUp(v.volume.id, v.volume.name, outcome.snapshot,
                                             policy.name, outcome.bytes, outcome.stored_bytes))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # one volume's failure does not stop the others
        run.report.failed.append(Failed(v.volume.id, _line(exc), v.volume.name))
    finally:
        await asyncio.to_thread(claim.release)


def _newest(store: Store, volume_id: str) -> str | None:
    times = [s.time for s in store.snapshots(reload=True)
             if (s.source or {}).get("volume_id") == volume_id]
    return max(times) if times else None


# ---------------------------------------------------------------------------------------------
# Forget, prune, verify

def _forget(run: _Run, mine: list[SurveyedVolume], dry_run: bool) -> None:
    from engine.store.retention import apply_policy, would_remove_all

    run.reporter.phase("forget")
    snapshots = run.store.snapshots(reload=True)
    doomed: list[Forgotten] = []
    for v in mine:
        policy = v.policy
        if policy is None or policy.keep is None:
            continue
        own = [s for s in snapshots if (s.source or {}).get("volume_id") == v.volume.id]
        decisions = apply_policy(own, policy.keep, now=run.now if run.time else None)
        if not decisions or would_remove_all(decisions):
            continue
        doomed += [Forgotten(policy.name, v.volume.id, d.snapshot.id, d.snapshot.time)
                   for d in decisions if not d.keep]
    run.report.forgotten = doomed
    if dry_run or not doomed:
        return
    try:
        run.store.forget([f.snapshot for f in doomed])
    except Exception as exc:  # a concurrent forget of the same snapshot, say: said, not fatal
        run.report.failed.append(Failed("", _line(exc), step="forget"))


def _prune(run: _Run, above: float, max_unused: float, dry_run: bool) -> None:
    if not run.report.forgotten:
        run.report.prune = "not needed: nothing was forgotten"
        return
    run.reporter.phase("prune")
    try:
        ignore = {f.snapshot for f in run.report.forgotten} if dry_run else set()
        plan = run.store.prune(dry_run=True, max_unused=max_unused, ignore_snapshots=ignore)
        share = 100.0 * plan.unused_bytes / plan.store_bytes if plan.store_bytes else 0.0
        if share <= above:
            run.report.prune = f"not needed: {share:.1f}% unused, at most {above:g}% wanted"
            return
        if dry_run:
            run.report.prune = f"would prune: {share:.1f}% unused, more than {above:g}%"
            return
        done = run.store.prune(max_unused=max_unused)
        run.report.prune = f"pruned: {share:.1f}% was unused; {done.bytes_freed} bytes freed"
    except LockedError:
        run.report.prune = "skipped: another prune is running"
    except Exception as exc:
        run.report.failed.append(Failed("", _line(exc), step="prune"))


def _verify(run: _Run, mine: list[SurveyedVolume], dry_run: bool) -> None:
    due = [v for v in mine if v.policy is not None and v.snapshots
           and verify_due(v.policy, v.last_verified, run.now)]
    if not due:
        run.report.verify = "not due"
        return
    if dry_run:
        run.report.verify = f"would verify: due for {plural(len(due), 'volume')}"
        return
    run.reporter.phase("verify")
    claim = Claim(run.store, "verify")
    try:
        claim.take()
    except ClaimTaken:
        run.report.verify = "skipped: another run is verifying the store"
        return
    try:
        ids = [s.id for s in run.store.snapshots(reload=True)]
        when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        check = run.store.check(read_data=True)
        damaged = set(check.damaged_snapshots)
        record_verified(run.store, when, [i for i in ids if i not in damaged])
        run.report.verify = "verified" if check.ok else "verified: problems found"
        if not check.ok:
            owners = {s.id: (s.source or {}).get("volume_id", "")
                      for s in run.store.snapshots()}
            for problem in check.problems[:20] or ["check --read-data found problems"]:
                run.report.failed.append(Failed("", _line(problem), step="verify"))
            for snap_id in sorted(damaged):
                run.report.failed.append(Failed(owners.get(snap_id, ""),
                                                f"snapshot {snap_id[:12]} is damaged",
                                                step="verify"))
    except Exception as exc:
        run.report.failed.append(Failed("", _line(exc), step="verify"))
    finally:
        claim.release()


def _line(exc: object) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
