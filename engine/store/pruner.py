"""The pruner: gives back the space of blobs that no snapshot needs, while backups run.

A pack that no snapshot needs, or whose needed blobs were copied into new packs (repacked
through the repository's PackWriter), is not deleted at once: it is first listed in a
*garbage list* (``garbage/<id>``). Backups that sync after the list is visible never
deduplicate against its packs. The list records the store locks that existed once it was
visible; its packs are deleted only when every one of those operations has ended (a backup
that might have deduplicated against them has committed its snapshot or died), after the
snapshots are read again and any pack that a new snapshot needs is recovered instead. The
index is rewritten without the packs before they are deleted, so a prune killed at any point
leaves a store that checks clean; the next prune finishes the work. docs/FORMAT.md, "Prune",
states the rule.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engine.errors import OperationError, UsageError
from engine.store.backends.base import Backend, NotFound
from engine.store.crypto import IntegrityError, Sealer
from engine.store.index import (GarbageList, IndexCache, Location, delta_ad, encode_delta,
                                new_delta_id, read_garbage_lists, seal_garbage_list)
from engine.store.locks import LockInfo, StoreLock, live_locks
from engine.store.pack import BLOB_TREE, BlobEntry, pack_name
from engine.store.repository import BlobReader, Cancelled, PackWriter
from engine.store.snapshot import ZERO_ID, Manifest, PruneReport, now_iso
from engine.units import plural

MAX_UNUSED_DEFAULT = 5.0     # percent of a pack's blob bytes that no snapshot needs
ENTRIES_PER_DELTA = 200_000  # blobs per delta of the consolidated index (~9 MiB)
RUN_GAP = 256 * 1024         # repack reads neighbouring needed blobs of a pack in one request
RUN_MAX = 8 * 1024 * 1024

Manifests = Callable[[], dict[str, "Manifest | Exception"]]
Phase = Callable[[str, int], None]
Progress = Callable[[int, int], None]
BlobKey = tuple[int, bytes]  # (type, id)


class _Needed:
    """The blobs that the snapshots need (tree blobs and the data chunks they list); grows as
    snapshots are read again."""

    def __init__(self, reader: BlobReader) -> None:
        self.reader = reader
        self.data: set[bytes] = set()
        self.trees: set[bytes] = set()
        self.snapshots: set[str] = set()

    def add(self, manifests: dict[str, Manifest | Exception]) -> None:
        for snap_id, manifest in sorted(manifests.items()):
            if isinstance(manifest, Exception):
                raise OperationError(f"snapshot {snap_id[:12]} cannot be read ({manifest}): run "
                                     "'strongroom check'; prune deleted nothing, since it cannot "
                                     "know what that snapshot needs")
            if snap_id in self.snapshots:
                continue
            for ref in manifest.trees:
                if ref.id in self.trees:
                    continue
                try:
                    ids, _ = self.reader.read_tree(ref)
                except IntegrityError as exc:
                    raise OperationError(f"snapshot {snap_id[:12]}: {exc}: run 'strongroom "
                                         "check'; prune deleted nothing") from None
                self.trees.add(ref.id)
                self.data.update(ids)
            self.snapshots.add(snap_id)
        self.data.discard(ZERO_ID)

    def __contains__(self, key: BlobKey) -> bool:
        blob_type, blob_id = key
        return blob_id in (self.trees if blob_type == BLOB_TREE else self.data)


@dataclass
class _Plan:
    packs: dict[str, list[BlobEntry]]                # every pack known, with its blobs
    sizes: dict[str, int]                            # file size of every pack listed
    marked: set[str]                                 # packs in any garbage list
    unused: list[str] = field(default_factory=list)  # live packs that nothing needs
    repack: dict[str, list[BlobEntry]] = field(default_factory=dict)  # pack -> blobs to copy
    needed_bytes: int = 0
    unused_bytes: int = 0


class Pruner:
    """One prune, under a prune lock (``lock``; None for a dry run under a shared lock)."""

    def __init__(self, backend: Backend, sealer: Sealer, cache: IndexCache, reader: BlobReader,
                 *, manifests: Manifests, sync: Callable[[], list[str]], lock: StoreLock,
                 own_lock: str, phase: Phase | None = None, progress: Progress | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.backend, self.sealer, self.cache, self.reader = backend, sealer, cache, reader
        self.manifests, self.sync, self.lock, self.own_lock = manifests, sync, lock, own_lock
        self.phase = phase or (lambda name, total: None)
        self.progress = progress or (lambda done, total: None)
        self.cancel = cancel
        self.needed = _Needed(reader)
        self.report = PruneReport()
        self.written = 0  # bytes of packs and deltas this prune wrote
        self.step = "planning"  # what it is doing, for error messages

    # ---- the whole run ---------------------------------------------------------------------
    def run(self, dry_run: bool, max_unused: float) -> PruneReport:
        if not 0 <= max_unused <= 100:
            raise UsageError(f"max-unused must be a percentage from 0 to 100, not {max_unused}")
        started = time.monotonic()
        report = self.report
        report.dry_run = dry_run
        self.phase("plan", 0)
        self.sync()
        lists = read_garbage_lists(self.backend, self.sealer)
        others = self._other_locks()
        self.needed.add(self.manifests())
        plan = self._plan(max_unused)
        report.snapshots = len(self.needed.snapshots)
        report.packs = len(plan.sizes)
        report.store_bytes = sum(plan.sizes.values())
        report.needed_bytes, report.unused_bytes = plan.needed_bytes, plan.unused_bytes
        report.deltas_before = sum(1 for _ in self.backend.list("index/"))
        due, waiting = self._split_due(lists, others, fill_in=not dry_run)
        if dry_run:
            self._dry_figures(plan, due, waiting)
            report.deltas_after = report.deltas_before
            report.seconds = round(time.monotonic() - started, 3)
            return report
        # Round 1: packs that nothing needs (and earlier garbage whose time has come) go first,
        # so that a nearly full store has room for the repack.
        if plan.unused:
            new = self._mark(plan.unused)
            (due if self._is_due(new) else waiting).append(new)
        if due:
            self._collect(due, waiting)
        # Round 2: repack, then the repacked packs become garbage in their turn.
        if plan.repack:
            self._repack(plan)
            new = self._mark(list(plan.repack))
            if self._is_due(new):
                self._collect([new], waiting)
            else:
                waiting.append(new)
        if report.deltas_after == 0 and (report.deltas_before > 1 or plan.repack):
            self._consolidate(set())
        if report.deltas_after == 0:
            report.deltas_after = sum(1 for _ in self.backend.list("index/"))
        self._pending(waiting)
        report.bytes_freed -= self.written
        report.seconds = round(time.monotonic() - started, 3)
        return report

    # ---- planning --------------------------------------------------------------------------
    def _plan(self, max_unused: float) -> _Plan:
        sizes = {st.name.rsplit("/", 1)[-1]: st.size for st in self.backend.list("packs/")}
        packs = {p: entries for p, entries in self.cache.pack_entries() if p in sizes}
        lists = read_garbage_lists(self.backend, self.sealer)
        marked = {p for g in lists for p in g.packs}
        plan = _Plan(packs, sizes, marked)
        live = sorted(p for p in packs if p not in marked)
        # Which copy of each needed blob to keep: its only live copy, else the one in the pack
        # that holds the largest share of blobs that only it has (that pack is the likeliest to
        # stay as it is).
        holders: dict[BlobKey, list[str]] = {}
        for p in live:
            for e in packs[p]:
                if (e.type, e.id) in self.needed:
                    holders.setdefault((e.type, e.id), []).append(p)
        only: dict[str, int] = {}
        for key, where in holders.items():
            if len(where) == 1:
                only[where[0]] = only.get(where[0], 0) + 1
        share = {p: only.get(p, 0) / max(1, len(packs[p])) for p in live}
        keep_in = {key: (where[0] if len(where) == 1 else
                         max(where, key=lambda p: (share[p], p)))
                   for key, where in holders.items()}
        missing = [key for key in self._needed_keys() if key not in keep_in
                   and not self._held_in(key, packs, marked)]
        if missing:
            blob_type, blob_id = missing[0]
            kind = "chunk list" if blob_type == BLOB_TREE else "chunk"
            are = "is" if len(missing) == 1 else "are"
            raise OperationError(f"{plural(len(missing), 'blob')} that snapshots need {are} "
                                 "missing from the "
                                 f"store (such as {kind} {blob_id.hex()[:16]}): run 'strongroom "
                                 "check'; prune deleted nothing")
        for p in live:
            kept = [e for e in packs[p] if keep_in.get((e.type, e.id)) == p]
            total = sum(e.stored_len for e in packs[p])
            used = sum(e.stored_len for e in kept)
            plan.needed_bytes += used
            plan.unused_bytes += total - used
            if not kept:
                plan.unused.append(p)
            elif total and (total - used) * 100 > max_unused * total:
                plan.repack[p] = kept
        for p in marked & packs.keys():  # garbage kept for now still holds needed blobs
            plan.unused_bytes += sum(e.stored_len for e in packs[p])
        return plan

    def _needed_keys(self) -> Iterable[BlobKey]:
        for tid in self.needed.trees:
            yield BLOB_TREE, tid
        for cid in self.needed.data:
            yield 0, cid

    def _held_in(self, key: BlobKey, packs: dict[str, list[BlobEntry]], marked: set[str]) -> bool:
        """Whether a garbage pack holds the blob (an earlier prune's list: a snapshot committed
        since needs it, and finishing that list will recover the pack)."""
        where = self.cache.copies([key[1]], key[0]).get(key[1], [])
        return any(p in marked and p in packs for p in where)

    def _dry_figures(self, plan: _Plan, due: list[GarbageList],
                     waiting: list[GarbageList]) -> None:
        report = self.report
        deletable = set(plan.unused) | {p for g in due for p in g.packs if p in plan.sizes}
        report.packs_deleted = len(deletable) + len(plan.repack)
        report.packs_repacked = len(plan.repack)
        report.bytes_repacked = sum(e.stored_len for kept in plan.repack.values() for e in kept)
        report.bytes_freed = (sum(plan.sizes[p] for p in deletable)
                              + sum(plan.sizes[p] for p in plan.repack)
                              - report.bytes_repacked)
        self._pending(waiting)

    # ---- garbage lists ---------------------------------------------------------------------
    def _other_locks(self) -> list[LockInfo]:
        return [lk for lk in live_locks(self.backend, self.sealer)
                if lk.name != self.own_lock]

    def _split_due(self, lists: list[GarbageList], others: list[LockInfo],
                   fill_in: bool) -> tuple[list[GarbageList], list[GarbageList]]:
        """Lists whose packs may be deleted now (every operation that ran when the list became
        visible has ended, and no Strongroom that ignores garbage lists is running), and the
        others. A list without its lock names (its prune was killed before writing them) gets
        the names of the locks that exist now: a superset of those it missed that still run."""
        names = {lk.name for lk in others}
        blind = any(not lk.knows_garbage for lk in others)
        due, waiting = [], []
        for g in lists:
            if g.locks is None:
                if fill_in:
                    g.locks = sorted(names)
                    self.backend.put(g.name, seal_garbage_list(self.sealer, g))
                if g.locks is None or names:
                    waiting.append(g)
                    continue
            if blind or names & set(g.locks):
                waiting.append(g)
            else:
                due.append(g)
        return due, waiting

    def _mark(self, packs: list[str]) -> GarbageList:
        """Write a garbage list, then record the locks that exist once it is visible."""
        self._check()
        self.step = "marking garbage"
        glist = GarbageList(os.urandom(16).hex(), now_iso(), sorted(packs))
        self.backend.put(glist.name, seal_garbage_list(self.sealer, glist))
        glist.locks = sorted(lk.name for lk in self._other_locks())
        self.backend.put(glist.name, seal_garbage_list(self.sealer, glist))
        return glist

    def _is_due(self, glist: GarbageList) -> bool:
        others = self._other_locks()
        return not glist.locks and all(lk.knows_garbage for lk in others)

    def _pending(self, waiting: list[GarbageList]) -> None:
        sizes = {st.name.rsplit("/", 1)[-1]: st.size for st in self.backend.list("packs/")}
        pending = {p for g in waiting for p in g.packs if p in sizes}
        self.report.packs_pending = len(pending)
        self.report.bytes_pending = sum(sizes[p] for p in pending)
        others = self._other_locks()
        holders = {lk.name: lk.doc for lk in others}
        waits = sorted({n for g in waiting for n in (g.locks or []) if n in holders}
                       | ({lk.name for lk in others if not lk.knows_garbage} if waiting else set()))
        self.report.waiting_for = [f"pid {holders[n].get('pid')} on {holders[n].get('host')} "
                                   f"({n})" for n in waits]

    # ---- deleting --------------------------------------------------------------------------
    def _collect(self, due: list[GarbageList], waiting: list[GarbageList]) -> None:
        """Delete the packs of lists whose time has come, except those that a snapshot
        committed since the list was written needs (recovered: the list goes, so they are live
        again). The index is rewritten without the deleted packs first."""
        self._check()
        self.step = "deleting garbage"
        self.phase("delete", 0)
        self.sync()
        self.needed.add(self.manifests())  # snapshots committed since the plan
        sizes = {st.name.rsplit("/", 1)[-1]: st.size for st in self.backend.list("packs/")}
        packs = {p: entries for p, entries in self.cache.pack_entries() if p in sizes}
        candidates = sorted({p for g in due for p in g.packs if p in packs})
        marked = {p for g in read_garbage_lists(self.backend, self.sealer) for p in g.packs}
        safe = set(packs) - marked - set(candidates)
        recovered: list[str] = []
        for p in candidates:
            needed = [e for e in packs[p] if (e.type, e.id) in self.needed]
            for blob_type in {e.type for e in needed}:
                ids = [e.id for e in needed if e.type == blob_type]
                where = self.cache.copies(ids, blob_type)
                if any(not safe.intersection(where.get(cid, ())) for cid in ids):
                    recovered.append(p)
                    safe.add(p)
                    break
        doomed = [p for p in candidates if p not in recovered]
        self._consolidate(set(doomed))
        self._check()
        for i, p in enumerate(doomed):
            self.backend.delete(pack_name(p))
            self.report.bytes_freed += sizes[p]
            self.progress(i + 1, len(doomed))
        self.cache.forget_packs(doomed)
        for g in due:
            self.backend.delete(g.name)
        self.report.packs_deleted += len(doomed)
        self.report.packs_recovered += len(recovered)
        self.sync()

    def _consolidate(self, without: set[str]) -> None:
        """Replace the index deltas that the cache holds by a few that list every pack it
        knows, except ``without``. New deltas first, old ones after: a crash in between leaves
        both (the same facts twice), never a pack that only the old ones listed."""
        step, self.step = self.step, "rewriting the index"
        self.sync()
        old = self.cache.merged_deltas()
        old_bytes = {st.name: st.size for st in self.backend.list("index/") if st.name in old}
        batch: list[tuple[str, list[BlobEntry]]] = []
        count = 0
        written: list[str] = []
        for pack_id, entries in self.cache.pack_entries():
            if pack_id in without:
                continue
            batch.append((pack_id, entries))
            count += len(entries)
            if count >= ENTRIES_PER_DELTA:
                written.append(self._write_delta(batch))
                batch, count = [], 0
        if batch:
            written.append(self._write_delta(batch))
        self._check()
        for name in old:
            if name not in written:
                self.backend.delete(name)
                self.report.bytes_freed += old_bytes.get(name, 0)
        self.report.deltas_after = sum(1 for _ in self.backend.list("index/"))
        self.step = step

    def _write_delta(self, packs: list[tuple[str, list[BlobEntry]]]) -> str:
        delta_id = new_delta_id()
        sealed = self.sealer.seal_object(encode_delta(packs), delta_ad(delta_id), compress=False)
        name = f"index/{delta_id}"
        self.backend.put(name, sealed)
        self.written += len(sealed)
        self.cache.adopt_delta(name, (p for p, _ in packs))
        return name

    # ---- repacking -------------------------------------------------------------------------
    def _repack(self, plan: _Plan) -> None:
        """Copy the needed blobs of the packs to repack into new packs (verified on the way:
        damaged data is never copied silently)."""
        total = sum(e.stored_len for kept in plan.repack.values() for e in kept)
        self.step = "repacking"
        self.phase("repack", total)
        writer = PackWriter(self.backend, self.sealer, self.cache)
        done = 0
        try:
            for pack_id in sorted(plan.repack):
                for start, end, blobs in _runs(plan.repack[pack_id]):
                    self._check()
                    try:
                        data = self.reader.fetch(pack_id, start, end - start)
                    except NotFound:
                        raise OperationError(f"pack {pack_id} disappeared during the repack: "
                                             "is another prune running?") from None
                    for e in blobs:
                        sealed = data[e.offset - start:e.offset - start + e.stored_len]
                        loc = Location(pack_id, e.offset, e.stored_len, e.raw_len, e.flags)
                        try:
                            self.reader.decode(sealed, loc, e.id, e.type)
                        except IntegrityError as exc:
                            raise OperationError(f"{exc}: the repack stopped (run 'strongroom "
                                                 "check --read-data'); nothing that snapshots "
                                                 "need was deleted") from None
                        writer.add(e.type, e.id, e.flags, e.raw_len, sealed)
                        done += e.stored_len
                    self.progress(done, total)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        self.written += writer.stored
        self.report.packs_repacked = len(plan.repack)
        self.report.bytes_repacked = done

    # ---- checks ------------------------------------------------------------------------------
    def _check(self) -> None:
        """Stop if cancelled or if the lock is lost: before anything is written or deleted."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("prune cancelled: what it did so far is consistent; run it again "
                            "to finish")
        self.lock.check()


def _runs(blobs: list[BlobEntry]) -> Iterable[tuple[int, int, list[BlobEntry]]]:
    """Neighbouring blobs of one pack, grouped into reads of at most RUN_MAX bytes."""
    run: list[BlobEntry] = []
    start = end = 0
    for e in sorted(blobs, key=lambda b: b.offset):
        e_end = e.offset + e.stored_len
        if run and (e.offset - end > RUN_GAP or e_end - start > RUN_MAX):
            yield start, end, run
            run = []
        if run:
            end = max(end, e_end)
        else:
            start, end = e.offset, e_end
        run.append(e)
    if run:
        yield start, end, run
