"""The index: where each blob lives. Append-only encrypted deltas in the store, merged into a
local SQLite cache so that "do we have this chunk?" costs no storage request.

A delta (``index/<32 hex>``) is a sealed object whose payload is a series of records::

    pack id (16 bytes) | u32le n | n × pack.ENTRY
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import platformdirs

from engine.store.backends.base import Backend, NotFound
from engine.store.crypto import IntegrityError, Sealer
from engine.store.pack import (ENTRY, BlobEntry, decode_entries, encode_entries,
                               pack_name, parse_toc)

COUNT = struct.Struct("<I")


class Location(NamedTuple):
    """Where one copy of a blob lies. A tuple, not a frozen dataclass: a restore plan builds
    one per chunk, and a frozen dataclass's __init__ cost ~1.5 µs each (25 ms per 16k)."""

    pack: str
    offset: int
    stored_len: int
    raw_len: int
    flags: int


T = TypeVar("T")


def _batches(values: Sequence[T], size: int = 500) -> Iterator[tuple[Sequence[T], str]]:
    """``values`` in parts small enough for one query's parameters, each with its "?,?,…"."""
    for i in range(0, len(values), size):
        part = values[i:i + size]
        yield part, ",".join("?" * len(part))


def delta_ad(delta_id: str) -> bytes:
    return b"strongroom index " + bytes.fromhex(delta_id)


def encode_delta(packs: Sequence[tuple[str, Sequence[BlobEntry]]]) -> bytes:
    out = []
    for pack_id, entries in packs:
        out.append(bytes.fromhex(pack_id) + COUNT.pack(len(entries)) + encode_entries(entries))
    return b"".join(out)


def decode_delta(raw: bytes) -> list[tuple[str, list[BlobEntry]]]:
    packs, pos, view = [], 0, memoryview(raw)
    while pos < len(raw):
        if pos + 20 > len(raw):
            raise IntegrityError("an index delta is truncated")
        pack_id = raw[pos:pos + 16].hex()
        (n,) = COUNT.unpack_from(raw, pos + 16)
        pos += 20
        end = pos + n * ENTRY.size
        if end > len(raw):
            raise IntegrityError("an index delta is truncated")
        packs.append((pack_id, decode_entries(view[pos:end])))
        pos = end
    return packs


def cache_path(store_id: str) -> Path:
    return Path(platformdirs.user_cache_dir("strongroom")) / "stores" / f"{store_id}.sqlite"


SCHEMA_VERSION = 3  # 2: every copy of a blob (a blob may sit in several packs); garbage
#                    3: damaged (blob copies that check found damaged, taken out of blobs)
SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (id BLOB NOT NULL, type INTEGER NOT NULL, pack TEXT NOT NULL,
    offset INTEGER NOT NULL, stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,
    flags INTEGER NOT NULL, PRIMARY KEY (id, type, pack)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_pack ON blobs (pack);
CREATE TABLE IF NOT EXISTS deltas (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS packs (id TEXT PRIMARY KEY, via TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS listed (pack TEXT NOT NULL, delta TEXT NOT NULL,
    PRIMARY KEY (pack, delta)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS listed_delta ON listed (delta);
CREATE TABLE IF NOT EXISTS garbage (pack TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS verified (snapshot TEXT PRIMARY KEY, time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS manifests (snapshot TEXT PRIMARY KEY, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS damaged (id BLOB NOT NULL, type INTEGER NOT NULL, pack TEXT NOT NULL,
    PRIMARY KEY (id, type, pack)) WITHOUT ROWID;
"""
OLD_TABLES = ("blobs", "deltas", "packs", "listed", "garbage", "verified", "manifests",
              "damaged")
# Copies of a blob in packs that a prune has marked as garbage are read only when no other copy
# exists, and never count for deduplication (docs/FORMAT.md, "Prune").
LIVE = "pack NOT IN (SELECT pack FROM garbage)"


class IndexCache:
    """The local SQLite cache of one store's index (safe to share between threads, and between
    processes: every change is a short transaction, so a reader never sees a half-done sync).

    It holds every copy of every blob (two backups may store the same chunk; a repack copies
    blobs), the packs that prune has marked as garbage, and snapshot files as last read."""

    def __init__(self, store_id: str, path: Path | None = None, *, memory: bool = False):
        """``memory``: a cache that lives only in this process (nothing on disk). A cache file
        that is damaged is deleted and made anew; one that cannot be written (a full disk, a
        file where its folder should be) gives way to a cache in memory. ``notice`` then says,
        in one line, what happened and what to do."""
        self.path = path or cache_path(store_id)
        self.notice: str | None = None
        self._lock = threading.Lock()
        self.memory = memory
        if memory:
            self._connect(":memory:")
            return
        try:
            self._connect(self.path)
        except (sqlite3.DatabaseError, OSError) as exc:
            if is_busy(exc):
                raise
            if not is_damaged(exc):
                self._to_memory(exc)
                return
            self.discard()
            try:
                self._connect(self.path)
            except (sqlite3.DatabaseError, OSError) as again:
                if is_busy(again):
                    raise
                self._to_memory(again)
                return
            self.notice = (f"the local cache {self.path} was damaged ({cache_error(exc)}): "
                           "rebuilt it from the store")

    def _connect(self, where: Path | str) -> None:
        if where != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(where, timeout=60, check_same_thread=False,
                                   isolation_level=None)
        try:
            _busy_retry(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
            self._db.execute("PRAGMA synchronous=NORMAL")
            _busy_retry(self._migrate)
        except BaseException:
            self._db.close()
            raise

    def _to_memory(self, exc: BaseException) -> None:
        self.memory = True
        self._connect(":memory:")
        self.notice = unwritable_notice(self.path, exc)

    def discard(self) -> None:
        """Delete the cache file (and its journal): it is rebuilt from the store."""
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                Path(f"{self.path}{suffix}").unlink()
            except FileNotFoundError:
                pass
            except OSError:
                if not suffix:
                    raise

    def _migrate(self) -> None:
        """An older cache is dropped whole: it is only a cache, rebuilt from the store."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                for table in OLD_TABLES:
                    self._db.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_pack(self, pack_id: str, entries: Iterable[BlobEntry], via: str) -> None:
        with self._lock:
            self._add_pack(pack_id, entries, via)

    def _add_pack(self, pack_id: str, entries: Iterable[BlobEntry], via: str) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR IGNORE INTO blobs VALUES (?,?,?,?,?,?,?)",
                ((e.id, e.type, pack_id, e.offset, e.stored_len, e.raw_len, e.flags)
                 for e in entries))
            self._db.execute("INSERT OR IGNORE INTO packs VALUES (?,?)", (pack_id, via))
            if via.startswith("index/"):
                self._db.execute("INSERT OR IGNORE INTO listed VALUES (?,?)", (pack_id, via))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _forget_packs(self, pack_ids: Iterable[str]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for pack_id in pack_ids:
                self._db.execute("DELETE FROM blobs WHERE pack=?", (pack_id,))
                self._db.execute("DELETE FROM packs WHERE id=?", (pack_id,))
                self._db.execute("DELETE FROM listed WHERE pack=?", (pack_id,))
                self._db.execute("DELETE FROM damaged WHERE pack=?", (pack_id,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def forget_packs(self, pack_ids: Iterable[str]) -> None:
        """Drop what the cache knows of packs that are gone from the store (prune deleted them)."""
        with self._lock:
            self._forget_packs(pack_ids)

    def sync(self, backend: Backend, sealer: Sealer, scan_packs: bool = True) -> list[str]:
        """Bring the cache up to date with the store: merge new deltas, forget deltas that a
        prune replaced (what they listed stays known while its packs exist: a pack never
        changes), take in the garbage lists; with ``scan_packs``, also forget packs that are gone
        and index complete packs that no delta mentions yet (left by a killed or concurrent
        backup) from their own tables of contents. Returns problems met (unreadable deltas or
        packs, a pack that a delta lists but the store lacks), which the caller may report.

        Order matters with writers running: deltas are listed before packs (a delta is written
        after the packs it lists), and the packs already known are read before packs are
        listed (a pack is known here only once it is stored)."""
        problems: list[str] = []
        with self._lock:
            names = {s.name for s in backend.list("index/")}
            garbage_lists = read_garbage_lists(backend, sealer, problems)
            known = {row[0] for row in self._db.execute("SELECT name FROM deltas")}
            replaced = known - names
            if replaced:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for name in replaced:
                        self._db.execute("DELETE FROM listed WHERE delta=?", (name,))
                        self._db.execute("DELETE FROM deltas WHERE name=?", (name,))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            for name in sorted(names - known):
                try:
                    raw = sealer.open_object(backend.get(name), delta_ad(name.rsplit("/", 1)[-1]),
                                             f"index delta {name}")
                    packs = decode_delta(raw)
                except NotFound:
                    continue  # replaced by a prune since the listing: its successor says it all
                except (IntegrityError, ValueError) as exc:
                    problems.append(str(exc))
                    continue
                for pack_id, entries in packs:
                    self._add_pack(pack_id, entries, via=name)
                self._db.execute("INSERT OR IGNORE INTO deltas VALUES (?)", (name,))
            marked = {p for g in garbage_lists for p in g.packs}
            self._set_garbage(marked)
            if scan_packs:
                indexed = {row[0] for row in self._db.execute("SELECT id FROM packs")}
                listed = {s.name.rsplit("/", 1)[-1]: s for s in backend.list("packs/")}
                gone = sorted(indexed - listed.keys())
                if gone:
                    marks = ",".join("?" * len(gone))
                    still_listed = {row[0] for row in self._db.execute(
                        f"SELECT DISTINCT pack FROM listed WHERE pack IN ({marks})", gone)}
                    for pack_id in sorted(still_listed):
                        # A delta still lists it: the store lost it (a prune deletes a pack only
                        # once no delta lists it). Forget what it held, so that the next backup
                        # stores those chunks again (and snapshots that need them become whole).
                        problems.append(f"pack {pack_id} is in the index but missing from the "
                                        "store")
                    self._forget_packs(gone)
                for pack_id, stat in listed.items():
                    if pack_id in indexed:
                        continue
                    try:
                        entries = read_toc(backend, sealer, pack_id, stat.size)
                    except (IntegrityError, NotFound) as exc:
                        problems.append(str(exc))
                        continue
                    self._add_pack(pack_id, entries, via="toc")
        return problems

    def _set_garbage(self, packs: set[str]) -> None:
        current = {row[0] for row in self._db.execute("SELECT pack FROM garbage")}
        if current == packs:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM garbage")
            self._db.executemany("INSERT INTO garbage VALUES (?)", ((p,) for p in packs))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def garbage(self) -> set[str]:
        """Packs that a prune marked as garbage (see docs/FORMAT.md, "Prune")."""
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT pack FROM garbage")}

    def data_id_prefixes(self, nbytes: int) -> Iterator[bytes]:
        """The first ``nbytes`` of every data blob id that deduplication may use (copies in
        garbage packs do not count), in ascending order (the primary key's order, so SQLite
        sorts nothing; an id in two packs comes twice), concatenated in batches of up to
        65536."""
        with self._lock:
            cur = self._db.execute(f"SELECT substr(id, 1, ?) FROM blobs WHERE type=0 AND {LIVE} "
                                   "ORDER BY id", (nbytes,))
            while rows := cur.fetchmany(65536):
                yield b"".join([row[0] for row in rows])

    def has(self, blob_id: bytes, blob_type: int) -> bool:
        """Whether a copy that deduplication may use is stored (not in a garbage pack)."""
        with self._lock:
            return self._db.execute(f"SELECT 1 FROM blobs WHERE id=? AND type=? AND {LIVE}",
                                    (blob_id, blob_type)).fetchone() is not None

    def have(self, ids: Sequence[bytes], blob_type: int) -> set[bytes]:
        """The ones of ``ids`` that have a copy deduplication may use: one query per 500 ids,
        at about half the cost per id of ``has`` (bench/known_ids.py)."""
        found: set[bytes] = set()
        with self._lock:
            for part, marks in _batches(ids):
                found.update(row[0] for row in self._db.execute(
                    f"SELECT id FROM blobs WHERE type=? AND id IN ({marks}) AND {LIVE}",
                    (blob_type, *part)))
        return found

    def lookup_many(self, ids: Iterable[bytes], blob_type: int) -> dict[bytes, Location]:
        """Where to read each blob: a copy outside garbage packs when there is one."""
        found: dict[bytes, Location] = {}
        ids = list(ids)
        with self._lock:
            for part, marks in _batches(ids):
                for row in self._db.execute(
                        f"SELECT id, pack, offset, stored_len, raw_len, flags, {LIVE} FROM blobs "
                        f"WHERE type=? AND id IN ({marks}) ORDER BY 7", (blob_type, *part)):
                    found[row[0]] = Location._make(row[1:6])  # live copies come last: they win
        return found

    def data_ends(self, packs: Iterable[str]) -> dict[str, int]:
        """Where the last blob of each pack ends (its trailer starts there)."""
        ends: dict[str, int] = {}
        with self._lock:
            for part, marks in _batches(list(packs)):
                ends.update(self._db.execute(
                    f"SELECT pack, MAX(offset + stored_len) FROM blobs WHERE pack IN ({marks}) "
                    "GROUP BY pack", part).fetchall())
        return ends

    def lookup(self, blob_id: bytes, blob_type: int) -> Location | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT pack, offset, stored_len, raw_len, flags FROM blobs WHERE id=? AND "
                f"type=? ORDER BY {LIVE} DESC LIMIT 1", (blob_id, blob_type)).fetchone()
        return Location(*row) if row else None

    def all_blobs(self) -> list[tuple[bytes, int, str, int, int, int, int]]:
        """Every copy of every blob: (id, type, pack, offset, stored length, raw length, flags)."""
        with self._lock:
            return self._db.execute("SELECT id, type, pack, offset, stored_len, raw_len, flags "
                                    "FROM blobs").fetchall()

    def pack_entries(self) -> Iterator[tuple[str, list[BlobEntry]]]:
        """Every pack the cache knows with its blobs, pack by pack (for prune)."""
        with self._lock:
            rows = self._db.execute("SELECT pack, type, flags, id, offset, stored_len, raw_len "
                                    "FROM blobs ORDER BY pack, offset").fetchall()
        pack, entries = None, []
        for row in rows:
            if row[0] != pack:
                if pack is not None:
                    yield pack, entries
                pack, entries = row[0], []
            entries.append(BlobEntry(*row[1:]))
        if pack is not None:
            yield pack, entries

    def copies(self, ids: Sequence[bytes], blob_type: int) -> dict[bytes, list[str]]:
        """Every pack that holds a copy of each of ``ids`` (ids with none are left out)."""
        found: dict[bytes, list[str]] = {}
        with self._lock:
            for part, marks in _batches(ids):
                for cid, pack in self._db.execute(
                        f"SELECT id, pack FROM blobs WHERE type=? AND id IN ({marks})",
                        (blob_type, *part)):
                    found.setdefault(cid, []).append(pack)
        return found

    def merged_deltas(self) -> set[str]:
        """Names of the deltas whose content the cache holds."""
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT name FROM deltas")}

    def adopt_delta(self, name: str, pack_ids: Iterable[str]) -> None:
        """Record a delta this process wrote from what the cache holds (prune's consolidated
        index), so that the next sync does not read it back."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO listed VALUES (?,?)",
                                     ((p, name) for p in pack_ids))
                self._db.execute("INSERT OR IGNORE INTO deltas VALUES (?)", (name,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def packs_via(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT id, via FROM packs").fetchall())

    def forget_blobs(self, copies: Iterable[tuple[bytes, int, str]]) -> int:
        """Take copies of blobs (id, type, pack) out of the cache: check found them damaged, so
        that the next backup stores those chunks again instead of deduplicating against them.
        Returns how many the cache held."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n = 0
                for blob_id, blob_type, pack in copies:
                    n += self._db.execute("DELETE FROM blobs WHERE id=? AND type=? AND pack=?",
                                          (blob_id, blob_type, pack)).rowcount
                    self._db.execute("INSERT OR IGNORE INTO damaged VALUES (?,?,?)",
                                     (blob_id, blob_type, pack))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return n

    def damaged(self) -> set[tuple[bytes, int, str]]:
        """The blob copies taken out by ``forget_blobs`` (while their pack exists)."""
        with self._lock:
            return set(self._db.execute("SELECT id, type, pack FROM damaged").fetchall())

    def fingerprint(self, packs: set[str],
                    skip: set[tuple[bytes, int, str]] = frozenset()) -> str:  # type: ignore
        """A digest of every blob copy the cache holds in ``packs`` (but ``skip``) and of the
        garbage packs among them: caches that agree about those packs have the same one."""
        h = hashlib.blake2b(digest_size=16)
        with self._lock:
            cur = self._db.execute("SELECT pack, id, type, offset, stored_len, raw_len, flags "
                                   "FROM blobs ORDER BY pack, id, type")
            while rows := cur.fetchmany(65536):
                for row in rows:
                    if row[0] in packs and (row[1], row[2], row[0]) not in skip:
                        h.update(repr(row).encode())
            h.update(repr(sorted({row[0] for row in self._db.execute(
                "SELECT pack FROM garbage")} & packs)).encode())
        return h.hexdigest()

    def known_packs(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT id FROM packs")}

    def sealed_manifests(self) -> dict[str, bytes]:
        """Snapshot files as last read (still encrypted: they are immutable, so a copy saves a
        storage request per snapshot and reveals nothing)."""
        with self._lock:
            return dict(self._db.execute("SELECT snapshot, sealed FROM manifests").fetchall())

    def keep_manifest(self, snapshot_id: str, sealed: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO manifests VALUES (?,?)", (snapshot_id, sealed))

    def drop_manifests(self, snapshot_ids: Iterable[str]) -> None:
        """Forget the copies of snapshot files that are gone from the store (forgotten)."""
        with self._lock:
            self._db.executemany("DELETE FROM manifests WHERE snapshot=?",
                                 ((s,) for s in snapshot_ids))
            self._db.executemany("DELETE FROM verified WHERE snapshot=?",
                                 ((s,) for s in snapshot_ids))

    def set_verified(self, snapshot_id: str, when: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO verified VALUES (?,?)", (snapshot_id, when))

    def verified(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT snapshot, time FROM verified").fetchall())


def is_busy(exc: BaseException) -> bool:
    """Another process holds the database: wait or retry, it is not damage."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc))


def is_damaged(exc: BaseException) -> bool:
    """The cache file is not a sound SQLite database (delete it and build it anew)."""
    text = str(exc)
    return isinstance(exc, sqlite3.DatabaseError) and not is_busy(exc) and (
        "not a database" in text or "malformed" in text or "file is encrypted" in text
        or "corrupt" in text or not isinstance(exc, sqlite3.OperationalError))


def cache_error(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def unwritable_notice(path: Path, exc: BaseException) -> str:
    folder = path.parent
    return (f"cannot use the local cache in {folder} ({cache_error(exc)}): working without it "
            "this time, which is slower; free some space there, or remove what is in the way "
            "(a file where that folder should be), or set XDG_CACHE_HOME to a writable folder")


def _busy_retry(fn: Callable[[], object], attempts: int = 50) -> None:
    """Run ``fn``, retrying while another process holds the database: changing the journal
    mode or the schema does not wait on SQLite's busy timeout."""
    for attempt in range(attempts):
        try:
            fn()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 + 0.01 * attempt)


def read_toc(backend: Backend, sealer: Sealer, pack_id: str, size: int) -> list[BlobEntry]:
    name = pack_name(pack_id)
    want = min(size, 64 * 1024)
    tail = backend.get(name, size - want, want)
    try:
        return parse_toc(sealer, pack_id, tail, size)
    except ValueError as exc:  # the TOC is longer than the first guess
        need = int(exc.args[0])
        tail = backend.get(name, size - need, need)
        return parse_toc(sealer, pack_id, tail, size)


def new_delta_id() -> str:
    return os.urandom(16).hex()




# ---------------------------------------------------------------------------------------------
# Garbage lists: packs that a prune found unneeded, deleted by a later step only when safe


@dataclass
class GarbageList:
    """``garbage/<id>``: packs marked as garbage at ``time``; ``locks`` names the store locks
    that existed once the list was visible (None until the prune that wrote it recorded them).
    See docs/FORMAT.md, "Prune"."""

    id: str
    time: str
    packs: list[str]
    locks: list[str] | None = None

    @property
    def name(self) -> str:
        return f"garbage/{self.id}"

    def encode(self) -> bytes:
        return json.dumps({"version": 1, "time": self.time, "packs": sorted(self.packs),
                           "locks": self.locks}, separators=(",", ":")).encode()


def garbage_ad(list_id: str) -> bytes:
    return b"strongroom garbage " + bytes.fromhex(list_id)


def seal_garbage_list(sealer: Sealer, glist: GarbageList) -> bytes:
    return sealer.seal_object(glist.encode(), garbage_ad(glist.id))


def read_garbage_lists(backend: Backend, sealer: Sealer,
                       problems: list[str] | None = None) -> list[GarbageList]:
    """Every garbage list in the store; unreadable ones are reported in ``problems`` (and
    skipped: a damaged list can only make a prune delete less)."""
    found = []
    for st in backend.list("garbage/"):
        list_id = st.name.rsplit("/", 1)[-1]
        try:
            doc = json.loads(sealer.open_object(backend.get(st.name), garbage_ad(list_id),
                                                f"garbage list {list_id}"))
            locks = doc.get("locks")
            found.append(GarbageList(list_id, str(doc["time"]), [str(p) for p in doc["packs"]],
                                     None if locks is None else [str(n) for n in locks]))
        except NotFound:
            continue  # removed by a prune meanwhile
        except (IntegrityError, ValueError, KeyError, TypeError) as exc:
            if problems is not None:
                problems.append(f"garbage list {list_id}: {exc}")
    return found
