"""The index: where each blob lives. Append-only encrypted deltas in the store, merged into a
local SQLite cache so that "do we have this chunk?" costs no storage request.

A delta (``index/<32 hex>``) is a sealed object whose payload is a series of records::

    pack id (16 bytes) | u32le n | n × pack.ENTRY
"""
from __future__ import annotations

import os
import sqlite3
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from engine.store.backends.base import Backend, NotFound
from engine.store.crypto import IntegrityError, Sealer
from engine.store.pack import (ENTRY, BlobEntry, decode_entries, encode_entries,
                               pack_name, parse_toc)

COUNT = struct.Struct("<I")


@dataclass(frozen=True)
class Location:
    pack: str
    offset: int
    stored_len: int
    raw_len: int
    flags: int


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


SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (id BLOB NOT NULL, type INTEGER NOT NULL, pack TEXT NOT NULL,
    offset INTEGER NOT NULL, stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,
    flags INTEGER NOT NULL, PRIMARY KEY (id, type)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deltas (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS packs (id TEXT PRIMARY KEY, via TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS verified (snapshot TEXT PRIMARY KEY, time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS manifests (snapshot TEXT PRIMARY KEY, sealed BLOB NOT NULL);
"""


class IndexCache:
    """The local SQLite cache of one store's index (safe to share between threads)."""

    def __init__(self, store_id: str, path: Path | None = None):
        self.path = path or cache_path(store_id)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _reset(self) -> None:
        self._db.executescript("DELETE FROM blobs; DELETE FROM deltas; DELETE FROM packs;")

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
            self._db.execute("INSERT OR REPLACE INTO packs VALUES (?,?)", (pack_id, via))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def sync(self, backend: Backend, sealer: Sealer, scan_packs: bool = True) -> list[str]:
        """Merge new deltas (rebuilding if some disappeared); with ``scan_packs``, also index
        complete packs that no delta mentions yet (left by a killed or concurrent backup).
        Returns problems met (unreadable deltas or packs), which the caller may report."""
        problems: list[str] = []
        with self._lock:
            names = {s.name for s in backend.list("index/")}
            known = {row[0] for row in self._db.execute("SELECT name FROM deltas")}
            if known - names:
                self._reset()
                known = set()
            for name in sorted(names - known):
                try:
                    raw = sealer.open_object(backend.get(name), delta_ad(name.rsplit("/", 1)[-1]),
                                             f"index delta {name}")
                    packs = decode_delta(raw)
                except (IntegrityError, NotFound, ValueError) as exc:
                    problems.append(str(exc))
                    continue
                for pack_id, entries in packs:
                    self._add_pack(pack_id, entries, via=name)
                self._db.execute("INSERT OR IGNORE INTO deltas VALUES (?)", (name,))
            if scan_packs:
                indexed = {row[0] for row in self._db.execute("SELECT id FROM packs")}
                listed = {s.name.rsplit("/", 1)[-1]: s for s in backend.list("packs/")}
                gone = sorted(indexed - listed.keys())
                for pack_id in gone:
                    # Forget what it held, so that the next backup stores those chunks again
                    # (and snapshots that need them become whole again).
                    problems.append(f"pack {pack_id} is in the index but missing from the store")
                    self._db.execute("DELETE FROM blobs WHERE pack=?", (pack_id,))
                    self._db.execute("DELETE FROM packs WHERE id=?", (pack_id,))
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

    def data_id_prefixes(self, nbytes: int) -> Iterator[bytes]:
        """The first ``nbytes`` of every data blob id, in ascending order (the primary key's
        order, so SQLite sorts nothing), concatenated in batches of up to 65536."""
        with self._lock:
            cur = self._db.execute("SELECT substr(id, 1, ?) FROM blobs WHERE type=0 ORDER BY id",
                                   (nbytes,))
            while rows := cur.fetchmany(65536):
                yield b"".join([row[0] for row in rows])

    def has(self, blob_id: bytes, blob_type: int) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM blobs WHERE id=? AND type=?",
                                    (blob_id, blob_type)).fetchone() is not None

    def have(self, ids: Sequence[bytes], blob_type: int) -> set[bytes]:
        """The ones of ``ids`` that the cache holds: one query per 500 ids, at about half the
        cost per id of ``has`` (bench/known_ids.py)."""
        found: set[bytes] = set()
        with self._lock:
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                marks = ",".join("?" * len(part))
                found.update(row[0] for row in self._db.execute(
                    f"SELECT id FROM blobs WHERE type=? AND id IN ({marks})", (blob_type, *part)))
        return found

    def lookup_many(self, ids: Iterable[bytes], blob_type: int) -> dict[bytes, Location]:
        found: dict[bytes, Location] = {}
        ids = list(ids)
        with self._lock:
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                marks = ",".join("?" * len(part))
                for row in self._db.execute(
                        f"SELECT id, pack, offset, stored_len, raw_len, flags FROM blobs "
                        f"WHERE type=? AND id IN ({marks})", (blob_type, *part)):
                    found[row[0]] = Location(*row[1:])
        return found

    def lookup(self, blob_id: bytes, blob_type: int) -> Location | None:
        with self._lock:
            row = self._db.execute(
                "SELECT pack, offset, stored_len, raw_len, flags FROM blobs WHERE id=? AND type=?",
                (blob_id, blob_type)).fetchone()
        return Location(*row) if row else None

    def all_blobs(self) -> list[tuple[bytes, int, str, int, int, int, int]]:
        with self._lock:
            return self._db.execute("SELECT id, type, pack, offset, stored_len, raw_len, flags "
                                    "FROM blobs").fetchall()

    def packs_via(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT id, via FROM packs").fetchall())

    def sealed_manifests(self) -> dict[str, bytes]:
        """Snapshot files as last read (still encrypted: they are immutable, so a copy saves a
        storage request per snapshot and reveals nothing)."""
        with self._lock:
            return dict(self._db.execute("SELECT snapshot, sealed FROM manifests").fetchall())

    def keep_manifest(self, snapshot_id: str, sealed: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO manifests VALUES (?,?)", (snapshot_id, sealed))

    def set_verified(self, snapshot_id: str, when: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO verified VALUES (?,?)", (snapshot_id, when))

    def verified(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT snapshot, time FROM verified").fetchall())


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


