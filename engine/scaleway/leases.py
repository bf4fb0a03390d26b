"""Leases: which flow run owns which temporaries, visible to every process and every machine.

A backup or restore run is an *owner* (a uuid). While it runs it holds a lease on every temporary
it made or adopted, and renews it on a heartbeat. Resume and clean-up, in whatever process or
machine, leave alone what a live lease holds, and take what only an expired lease holds for a
crashed run's leftovers (adopted by resume, swept by clean-up).

Where a lease is written:

- SBS snapshots carry it in their tags, ``strongroom-owner=<owner>`` and ``strongroom-lease=<unix
  time it expires>``, given in the creating call itself (a snapshot is never unowned for a
  moment) and renewed with the Block API's update of the snapshot's tags.
- S3 objects and multipart uploads cannot carry ours (Scaleway writes the export object; an
  upload's metadata is not listed), so the owner keeps a lease object in the staging bucket,
  ``strongroom-tmp/leases/<owner>.json``: ``{"owner", "job", "host", "pid", "process",
  "expires", "snapshots": [ids], "keys": [keys]}``. A key is written into it *before* the object
  or upload it names is made, and readers list objects before they read leases, so no reader
  sees a new object without its lease.
- ``process`` names the owner's process precisely enough for a reader on the same machine to
  tell that it is gone (``<boot id>:<pid namespace>:<pid>:<start time>``, from /proc): such a
  reader counts the lease as expired at once, so that a run killed with SIGKILL (or a crashed
  daemon) does not hold its temporaries for the rest of its lease. Elsewhere, or without /proc,
  only the expiry tells.
- The heartbeat renews both every ``every`` seconds to now + ``ttl`` (60 s and 15 min by
  default). When it cannot (any error) until less than one beat is left, the flow stops with
  :class:`LeaseLost`: past that point another run may rightly take the temporaries over
  (restic's rule for its locks). A snapshot that refuses the update while it is busy (409/412)
  counts as renewed: nobody sweeps a busy snapshot, and the lease object names it too.

Taking over (adopting an export, sweeping) is a claim: write the lease object naming the things,
then read every lease again; what another live lease also names is let go. Of two runs claiming
at once, the later reader sees the other's claim, so at most one goes on (maybe neither: safe).

Readers see three cases (:class:`Claim`): held (a live lease names it), released (only expired
leases do), unknown (nothing does: made before leases existed; the old age rules apply).
Expiry times are the writer's clock: machines must agree to well within a beat (NTP does).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from scaleway import ScalewayException

from engine.errors import OperationError
from engine.scaleway.api import Apis, describe, is_not_found, scw_message, status_of

T = TypeVar("T")
OWNER_TAG = "strongroom-owner"
LEASE_TAG = "strongroom-lease"
LEASE_PREFIX = "strongroom-tmp/leases/"
BUSY_STATUSES = (409, 412)  # the Block API's answers for a resource in a transient state


class LeaseLost(OperationError):
    """The heartbeat could not renew the lease in time: the flow must stop."""


@dataclass(frozen=True)
class LeaseTerms:
    """How long a lease lives unrenewed, and how often it is renewed (``ttl`` > 2 ``every``)."""

    ttl: float = 900.0
    every: float = 60.0


def lease_key(owner: str) -> str:
    return f"{LEASE_PREFIX}{owner}.json"


# ---------------------------------------------------------------------------------------------
# what other runs read

@dataclass
class LeaseRecord:
    """The lease object of one owner, as stored in the bucket."""

    owner: str
    expires: float
    job: str = ""
    host: str = ""
    pid: int = 0
    process: str = ""  # this_process() of the owner, "" when unknown
    snapshots: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def live(self, now: float) -> bool:
        return self.expires > now

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, owner: str) -> "LeaseRecord":
        """A record read back; an unreadable one counts as expired and naming nothing (a
        lease object is written whole, so this only comes from someone else's mistake)."""
        try:
            doc = json.loads(data)
            return cls(owner=str(doc["owner"]), expires=float(doc["expires"]),
                       job=str(doc.get("job", "")), host=str(doc.get("host", "")),
                       pid=int(doc.get("pid", 0)), process=str(doc.get("process", "")),
                       snapshots=[str(s) for s in doc.get("snapshots", [])],
                       keys=[str(k) for k in doc.get("keys", [])])
        except (ValueError, KeyError, TypeError):
            return cls(owner=owner, expires=0.0)


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _machine() -> str:
    """This kernel's boot and this process's pid namespace: where a pid means one process."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    return f"{boot}:{namespace}" if boot else ""


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks after boot), None when there is no such live
    process (a zombie is dead: it only waits to be reaped)."""
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces and brackets
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def this_process() -> str:
    """The lease's ``process``: this process, as a reader on the same machine can check it;
    "" where /proc cannot tell."""
    machine, started = _machine(), _started(os.getpid())
    return f"{machine}:{os.getpid()}:{started}" if machine and started else ""


def process_gone(process: str) -> bool:
    """True only when ``process`` (a lease's) names a process of this machine and pid
    namespace that no longer runs: no such pid, or a pid since reused by another process."""
    parts = process.split(":")
    if len(parts) != 4 or f"{parts[0]}:{parts[1]}" != _machine():
        return False
    try:
        pid = int(parts[2])
    except ValueError:
        return False
    return _started(pid) != parts[3]


def tag_lease(tags: Iterable[str]) -> tuple[str, float] | None:
    """(owner, expiry) from a snapshot's tags; None when it carries no owner. An owner with a
    missing or garbled expiry counts as expired: only a renewing owner writes a good one."""
    values = dict(str(t).partition("=")[::2] for t in tags)
    owner = values.get(OWNER_TAG)
    if not owner:
        return None
    try:
        return owner, float(values.get(LEASE_TAG, ""))
    except ValueError:
        return owner, 0.0


def lease_tags(owner: str, expires: float) -> list[str]:
    # Whole seconds read better in the console; rounding up never shortens a lease.
    return [f"{OWNER_TAG}={owner}", f"{LEASE_TAG}={math.ceil(expires)}"]


def without_lease(tags: Iterable[str]) -> list[str]:
    return [str(t) for t in tags if not str(t).startswith((f"{OWNER_TAG}=", f"{LEASE_TAG}="))]


@dataclass(frozen=True)
class Claim:
    """Where one temporary stands: ``holder`` is the owner of a live lease naming it (None when
    there is none); ``leased`` says whether any lease, live or expired, names it."""

    holder: str | None = None
    leased: bool = False

    def __or__(self, other: "Claim") -> "Claim":
        return Claim(self.holder or other.holder, self.leased or other.leased)


@dataclass
class Holders:
    """Every lease of one bucket at one moment, as one reader saw them."""

    records: list[LeaseRecord]
    now: float = field(default_factory=time.time)
    # Owners known to be dead before their lease runs out (the daemon that ran them restarted
    # and marked their jobs interrupted): their leases count as expired.
    dead: frozenset[str] = frozenset()

    def _live(self, rec: LeaseRecord) -> bool:
        return rec.live(self.now) and rec.owner not in self.dead

    def for_key(self, key: str) -> Claim:
        claim = Claim()
        for rec in self.records:
            if key in rec.keys:
                claim |= Claim(rec.owner if self._live(rec) else None, True)
        return claim

    def for_snapshot(self, snapshot_id: str, tags: Iterable[str]) -> Claim:
        claim = Claim()
        tagged = tag_lease(tags)
        if tagged is not None:
            owner, expires = tagged
            live = expires > self.now and owner not in self.dead
            claim = Claim(owner if live else None, True)
        for rec in self.records:
            if snapshot_id in rec.snapshots:
                claim |= Claim(rec.owner if self._live(rec) else None, True)
        return claim

    def owner_live(self, owner: str) -> bool:
        """Whether ``owner`` holds a live lease object here."""
        return any(r.owner == owner and self._live(r) for r in self.records)

    def live_owners(self, *, key: str | None = None, snapshot: str | None = None) -> set[str]:
        """Owners of live lease objects naming ``key`` or ``snapshot``."""
        return {r.owner for r in self.records if self._live(r)
                and ((key is not None and key in r.keys)
                     or (snapshot is not None and snapshot in r.snapshots))}

    def expired(self) -> list[LeaseRecord]:
        return [r for r in self.records if not self._live(r)]


def read_holders(s3: Any, bucket: str, dead: frozenset[str] = frozenset()) -> Holders:
    """Every lease object of ``bucket``. Blocking. Read *after* listing what they may hold.
    Owners whose process is known gone (:func:`process_gone`) count as ``dead``."""
    records: list[LeaseRecord] = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=LEASE_PREFIX)
    for page in pages:
        for obj in page.get("Contents", []):
            owner = obj["Key"][len(LEASE_PREFIX):].removesuffix(".json")
            try:
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            except ClientError as exc:
                if is_not_found(exc):
                    continue  # released between the listing and now
                raise
            records.append(LeaseRecord.from_json(body, owner))
    now = time.time()
    gone = {r.owner for r in records if r.live(now) and process_gone(r.process)}
    return Holders(records, now=now, dead=frozenset(dead) | gone)


# ---------------------------------------------------------------------------------------------
# what this run writes

class Lease:
    """One run's lease: what it holds, written where other runs look, renewed by a heartbeat
    while :meth:`guard` runs the flow."""

    def __init__(self, apis: Apis, zone: str, bucket: str, s3: Any, *, owner: str | None = None,
                 job: str = "", terms: LeaseTerms = LeaseTerms()) -> None:
        if terms.ttl <= 2 * terms.every:
            raise ValueError("a lease must live longer than two heartbeats")
        self.apis, self.zone, self.bucket, self.s3 = apis, zone, bucket, s3
        self.owner = owner or uuid.uuid4().hex
        self.job, self.terms = job, terms
        self.snapshots: dict[str, list[str]] = {}  # held: id -> its tags without the lease's
        self.claimed: set[str] = set()  # snapshots named only while they are being removed
        self.keys: set[str] = set()
        self.expires = 0.0  # what the last complete renewal wrote everywhere
        self.lost: LeaseLost | None = None
        self._error: BaseException | None = None
        self._write_lock = asyncio.Lock()  # the heartbeat and the flow both write the object

    # -- writing -------------------------------------------------------------------------------
    def tags(self) -> list[str]:
        """Lease tags for a creating call, valid from now."""
        return lease_tags(self.owner, time.time() + self.terms.ttl)

    def record(self, expires: float) -> LeaseRecord:
        return LeaseRecord(owner=self.owner, expires=expires, job=self.job,
                           host=socket.gethostname(), pid=os.getpid(),
                           process=this_process(),
                           snapshots=sorted(set(self.snapshots) | self.claimed),
                           keys=sorted(self.keys))

    async def write(self) -> None:
        """Write the lease object as it stands now (raises: the flow must not go on unowned)."""
        async with self._write_lock:
            rec = self.record(time.time() + self.terms.ttl)
            try:
                await asyncio.to_thread(self.s3.put_object, Bucket=self.bucket,
                                        Key=lease_key(self.owner), Body=rec.to_json(),
                                        ContentType="application/json")
            except (ClientError, BotoCoreError) as exc:
                raise describe(exc, f"writing the lease s3://{self.bucket}/"
                                    f"{lease_key(self.owner)}") from None

    async def start(self) -> None:
        await self.renew()

    def add_snapshot(self, snapshot_id: str, tags: Iterable[str]) -> None:
        """A snapshot made with :meth:`tags`: held from now on (the next write names it)."""
        self.snapshots[snapshot_id] = without_lease(tags)

    async def hold_key(self, key: str) -> None:
        """Hold ``key`` before the object or upload is made."""
        self.keys.add(key)
        await self.write()

    async def renew(self) -> None:
        """Push the expiry to now + ttl in the lease object and on every held snapshot."""
        expires = time.time() + self.terms.ttl
        await self.write()
        for snapshot_id in list(self.snapshots):
            await self._retag(snapshot_id, expires)
        self.expires = expires

    async def _retag(self, snapshot_id: str, expires: float) -> None:
        tags = self.snapshots.get(snapshot_id)
        if tags is None:
            return
        try:
            await asyncio.to_thread(self.apis.block.update_snapshot, snapshot_id=snapshot_id,
                                    zone=self.zone, tags=tags + lease_tags(self.owner, expires))
        except ScalewayException as exc:
            if is_not_found(exc):
                self.snapshots.pop(snapshot_id, None)  # removed: nothing left to hold
            elif status_of(exc) not in BUSY_STATUSES:
                raise describe(exc, f"renewing the lease on snapshot {snapshot_id}") from None

    async def claim(self, keys: Iterable[str] = (), snapshots: Iterable[str] = (), *,
                    hold: dict[str, list[str]] | None = None, whole: bool = False) -> set[str]:
        """Take over temporaries that no live lease held when the caller looked: name them in
        the lease object, then read every lease again, and let go of what another live lease
        names too. ``hold``: snapshots to keep (and retag) as this run's own, id -> tags;
        ``snapshots``: named only while this run removes them. Returns what was let go (with
        ``whole``: everything, as soon as one is contested)."""
        keys, snapshots, hold = set(keys), set(snapshots), dict(hold or {})
        self.keys |= keys
        self.claimed |= snapshots
        self.snapshots.update({s: without_lease(t) for s, t in hold.items()})
        await self.write()
        holders = await asyncio.to_thread(read_holders, self.s3, self.bucket)
        contested = ({k for k in keys if holders.live_owners(key=k) - {self.owner}}
                     | {s for s in snapshots | set(hold)
                        if holders.live_owners(snapshot=s) - {self.owner}})
        if contested and whole:
            contested = keys | snapshots | set(hold)
        if contested:
            self.drop(contested & keys, contested - keys)
            await self.write()
        expires = time.time() + self.terms.ttl
        for snapshot_id in set(hold) - contested:
            await self._retag(snapshot_id, expires)
        return contested

    def drop(self, keys: Iterable[str] = (), snapshots: Iterable[str] = ()) -> None:
        """Stop naming these (removed, or let go); the next write says so."""
        self.keys.difference_update(keys)
        for snapshot_id in snapshots:
            self.snapshots.pop(snapshot_id, None)
            self.claimed.discard(snapshot_id)

    async def disown(self, snapshot_id: str | None, key: str | None) -> None:
        """Kept temporaries (``keep``) go back to having no lease: the old age rules apply to
        them, as to anything made before leases."""
        tags = self.snapshots.get(snapshot_id or "")
        if snapshot_id and tags is not None:
            with contextlib.suppress(ScalewayException):
                await asyncio.to_thread(self.apis.block.update_snapshot, snapshot_id=snapshot_id,
                                        zone=self.zone, tags=tags)
        self.drop([key] if key else [], [snapshot_id] if snapshot_id else [])

    async def release(self) -> None:
        """The run is over: remove the lease object. A lost lease keeps it: expired, it tells
        a later clean-up that what it names is a dead run's, to sweep whatever its age."""
        if self.lost is not None:
            return
        with contextlib.suppress(ClientError, BotoCoreError):
            await asyncio.to_thread(self.s3.delete_object, Bucket=self.bucket,
                                    Key=lease_key(self.owner))

    # -- the heartbeat -------------------------------------------------------------------------
    async def guard(self, work: Awaitable[T], on_lost: Callable[[], None]) -> T:
        """Run ``work`` while the heartbeat renews the lease. If the lease cannot be renewed in
        time, call ``on_lost`` (tell threads to stop), cancel ``work`` and raise LeaseLost."""
        body = asyncio.ensure_future(work)
        beat = asyncio.ensure_future(self._beat())
        try:
            await asyncio.wait({body, beat}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            body.cancel()
            with contextlib.suppress(BaseException):
                await body  # its own clean-up runs first
            raise
        finally:
            beat.cancel()
            with contextlib.suppress(BaseException):
                await beat
        if body.done():
            return body.result()
        if self.lost is None:  # the heartbeat itself broke: never run on unguarded
            self.lost = LeaseLost(f"the lease heartbeat failed: {beat.exception()!r}")
        on_lost()
        body.cancel()
        with contextlib.suppress(BaseException):
            await body
        raise self.lost

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.terms.every)
            try:
                await self.renew()
            except Exception as exc:  # any failure: restic's rule, not only network errors
                self._error = exc
            left = self.expires - time.time()
            if left < self.terms.every:
                self.lost = LeaseLost(self._lost_message())
                raise self.lost

    def _lost_message(self) -> str:
        why = scw_message(self._error) if self._error is not None else "renewals too late"
        return (f"stopped: the lease on this run's temporaries (owner {self.owner}) could not be "
                f"renewed for {time.time() - self.expires + self.terms.ttl:.0f} s ({why}); "
                f"going on could clash with another run taking them over. They are left for a "
                f"later run to sweep once the lease has expired; check the network, then retry")
