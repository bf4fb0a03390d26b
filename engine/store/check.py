"""Verifying a store: structure always, and with ``read_data`` every blob re-read and verified."""
from __future__ import annotations

from collections.abc import Callable

from engine.store.backends.base import NotFound
from engine.store.crypto import IntegrityError
from engine.store.index import Location, read_toc
from engine.store.pack import BLOB_DATA, BLOB_TREE, PACK_MAGIC, pack_name
from engine.store.repository import BlobReader
from engine.store.snapshot import ZERO_ID, CheckReport, Manifest, decode_tree


def run_check(reader: BlobReader, manifests: dict[str, Manifest | Exception], read_data: bool,
              sync_problems: list[str],
              progress: Callable[[int, int], None] | None = None,
              still_locked: Callable[[], None] | None = None,
              bad_out: set[tuple[bytes, int, str]] | None = None) -> CheckReport:
    """``still_locked`` raises when the store lock is lost: called for each pack and snapshot.
    ``bad_out`` receives the blob copies found damaged or missing: (id, type, pack)."""
    backend, cache = reader.backend, reader.cache
    report = CheckReport(ok=True, problems=list(sync_problems), read_data=read_data)
    # Garbage packs (as of the last sync): a concurrent prune may delete them once listed here,
    # which is not a problem.
    garbage = cache.garbage()
    packs = {s.name.rsplit("/", 1)[-1]: s.size for s in backend.list("packs/")}
    report.packs = len(packs)
    by_pack: dict[str, list[tuple[bytes, int, Location]]] = {}
    for blob_id, blob_type, pack, offset, stored, raw, flags in cache.all_blobs():
        by_pack.setdefault(pack, []).append((blob_id, blob_type,
                                             Location(pack, offset, stored, raw, flags)))
    report.blobs = sum(len(v) for v in by_pack.values())
    bad_copies: set[tuple[bytes, int, str]] = set()
    total = sum(packs.values()) if read_data else len(packs)
    done = 0
    for pack_id, blobs in by_pack.items():
        if pack_id not in packs and pack_id not in garbage:  # a prune may delete garbage
            report.problems.append(f"pack {pack_id} is in the index but missing from the store")
            bad_copies.update((b, t, pack_id) for b, t, _ in blobs)
    for pack_id, size in packs.items():
        if still_locked is not None:
            still_locked()
        blobs = by_pack.get(pack_id, [])
        try:
            toc = {(e.id, e.type): e for e in read_toc(backend, reader.sealer, pack_id, size)}
        except NotFound as exc:
            if pack_id in garbage:
                continue
            report.problems.append(str(exc))
            toc = None
        except IntegrityError as exc:
            report.problems.append(str(exc))
            toc = None
        if toc is not None:
            for blob_id, blob_type, loc in blobs:
                e = toc.get((blob_id, blob_type))
                if e is None or (e.offset, e.stored_len) != (loc.offset, loc.stored_len):
                    report.problems.append(f"pack {pack_id} does not hold blob "
                                           f"{blob_id.hex()[:16]} where the index says")
                    bad_copies.add((blob_id, blob_type, pack_id))
        if read_data:
            bad_copies |= {(b, t, pack_id) for b, t in
                           _verify_pack(reader, pack_id, blobs, report, pack_id in garbage)}
            done += size
        else:
            done += 1
        if progress is not None:
            progress(done, total)
    # A blob is damaged when every copy of it is (two backups may store one chunk twice, and a
    # repack copies blobs): a snapshot may use any good copy.
    copies: dict[tuple[bytes, int], int] = {}
    for blobs in by_pack.values():
        for b, t, _ in blobs:
            copies[(b, t)] = copies.get((b, t), 0) + 1
    bad_count: dict[tuple[bytes, int], int] = {}
    for b, t, _ in bad_copies:
        bad_count[(b, t)] = bad_count.get((b, t), 0) + 1
    bad = {key for key, n in bad_count.items() if n >= copies.get(key, 0)}
    if bad_out is not None:
        bad_out |= bad_copies
    for snap_id, manifest in manifests.items():
        if still_locked is not None:
            still_locked()
        if isinstance(manifest, Exception):
            report.problems.append(f"snapshot {snap_id[:12]}: {manifest}")
            report.damaged_snapshots.append(snap_id)
            continue
        if not _snapshot_sound(reader, manifest, bad, report):
            report.damaged_snapshots.append(snap_id)
    report.snapshots = len(manifests)
    report.ok = not report.problems and not report.damaged_snapshots
    return report


def _verify_pack(reader: BlobReader, pack_id: str, blobs: list[tuple[bytes, int, Location]],
                 report: CheckReport, garbage: bool = False) -> set[tuple[bytes, int]]:
    """The blobs of a pack that are damaged (a garbage pack deleted meanwhile: none)."""
    bad: set[tuple[bytes, int]] = set()
    try:
        data = memoryview(reader.backend.get(pack_name(pack_id)))
    except NotFound:
        return set() if garbage else {(b, t) for b, t, _ in blobs}
    if bytes(data[:len(PACK_MAGIC)]) != PACK_MAGIC:
        report.problems.append(f"pack {pack_id} has a damaged header")
    for blob_id, blob_type, loc in blobs:
        sealed = data[loc.offset:loc.offset + loc.stored_len]
        try:
            if len(sealed) != loc.stored_len:
                raise IntegrityError(f"blob {blob_id.hex()[:16]} in pack {pack_id} is truncated")
            reader.decode(sealed, loc, blob_id, blob_type)
        except IntegrityError as exc:
            report.problems.append(str(exc))
            bad.add((blob_id, blob_type))
    return bad


def _snapshot_sound(reader: BlobReader, manifest: Manifest, bad: set[tuple[bytes, int]],
                    report: CheckReport) -> bool:
    short = manifest.info.id[:12]
    sound = True
    expected = 0
    for ref in manifest.trees:
        if ref.offset != expected:
            report.problems.append(f"snapshot {short}: its chunk lists are not contiguous")
            return False
        expected += ref.bytes
        if (ref.id, BLOB_TREE) in bad:
            report.problems.append(f"snapshot {short}: a chunk list is damaged")
            return False
        try:
            ids, lengths = decode_tree(reader.read_blob(ref.id, BLOB_TREE))
        except IntegrityError as exc:
            report.problems.append(f"snapshot {short}: {exc}")
            return False
        if len(ids) != ref.chunks or sum(lengths) != ref.bytes:
            report.problems.append(f"snapshot {short}: a chunk list does not match its manifest")
            return False
        missing = damaged = 0
        for cid in set(ids):
            if cid == ZERO_ID:
                continue
            if (cid, BLOB_DATA) in bad:
                damaged += 1
            elif reader.cache.lookup(cid, BLOB_DATA) is None:
                missing += 1
        if missing or damaged:
            report.problems.append(f"snapshot {short}: {damaged} damaged and {missing} missing "
                                   "chunks")
            sound = False
    if expected != manifest.info.bytes:
        report.problems.append(f"snapshot {short}: its chunk lists cover {expected} bytes, "
                               f"not {manifest.info.bytes}")
        return False
    return sound
