"""Snapshots: the public dataclasses, the manifest, and chunk-list ("tree") blobs.

A tree blob's plaintext is n × (chunk id: 32 bytes | u32le length); an all-zero id marks an
all-zero chunk, which is stored nowhere. The manifest lists the trees in image order.
"""
from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import blake3

from engine.store.crypto import Sealer

TREE_ENTRY = struct.Struct("<32sI")
ZERO_ID = bytes(32)
CHUNKS_PER_TREE = 65536
MANIFEST_VERSION = 2           # what backups write: the digest is over the chunk list
MANIFEST_VERSIONS = (1, 2)     # what restores read (1: the digest is over the whole image)
DIGEST_IMAGE = "blake3:"       # version 1: BLAKE3 of the whole image (a second full pass)
DIGEST_CHUNKS = "chunks-blake3:"  # version 2: BLAKE3 of the chunk list (docs/FORMAT.md §9)


def iso_time(when: datetime) -> str:
    """A time as manifests record it: UTC, microseconds, ``Z``."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_iso() -> str:
    return iso_time(datetime.now(timezone.utc))


@dataclass
class SnapshotInfo:
    id: str
    time: str
    name: str
    bytes: int
    stored_bytes: int
    seconds: float
    tags: dict[str, str] = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    digest: str = ""
    last_verified: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BackupResult:
    snapshot: SnapshotInfo
    bytes: int
    stored_bytes: int
    seconds: float
    warnings: list[str] = field(default_factory=list)  # worth knowing (the cache was rebuilt)


@dataclass
class RestoreResult:
    snapshot: SnapshotInfo
    bytes: int
    seconds: float
    target: str
    # Worth knowing, not a failure (the manifest came from the local cache: the store's copy
    # is damaged).
    warnings: list[str] = field(default_factory=list)
    sha256: str | None = None  # the image's SHA-256 hex, when asked for


@dataclass
class CheckReport:
    ok: bool
    problems: list[str] = field(default_factory=list)
    damaged_snapshots: list[str] = field(default_factory=list)
    # Not damage: things worth knowing (leftover temp files of interrupted writes).
    warnings: list[str] = field(default_factory=list)
    snapshots: int = 0
    packs: int = 0
    blobs: int = 0
    read_data: bool = False


@dataclass(frozen=True)
class TreeRef:
    id: bytes       # blob id of the tree blob
    offset: int     # image offset of its first chunk
    bytes: int      # image bytes it covers
    chunks: int


@dataclass
class Manifest:
    info: SnapshotInfo
    trees: list[TreeRef]
    chunker: dict[str, int]

    def encode(self) -> bytes:
        version = 1 if self.info.digest.startswith(DIGEST_IMAGE) else MANIFEST_VERSION
        doc = {"version": version, "time": self.info.time, "name": self.info.name,
               "bytes": self.info.bytes, "stored_bytes": self.info.stored_bytes,
               "seconds": self.info.seconds, "tags": self.info.tags, "source": self.info.source,
               "digest": self.info.digest, "chunker": self.chunker,
               "trees": [[t.id.hex(), t.offset, t.bytes, t.chunks] for t in self.trees]}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, snapshot_id: str, raw: bytes) -> "Manifest":
        doc = json.loads(raw)
        if doc.get("version") not in MANIFEST_VERSIONS or isinstance(doc.get("version"), bool):
            raise ValueError(f"snapshot {snapshot_id} has manifest version {doc.get('version')}")
        info = SnapshotInfo(id=snapshot_id, time=doc["time"], name=doc["name"],
                            bytes=doc["bytes"], stored_bytes=doc["stored_bytes"],
                            seconds=doc["seconds"], tags=doc["tags"], source=doc["source"],
                            digest=doc["digest"])
        trees = [TreeRef(bytes.fromhex(t[0]), t[1], t[2], t[3]) for t in doc["trees"]]
        return cls(info, trees, doc.get("chunker", {}))


def snapshot_id(id_key: bytes, manifest_plain: bytes) -> str:
    return blake3.blake3(manifest_plain, key=id_key).hexdigest()


def snapshot_name(snap_id: str) -> str:
    return f"snapshots/{snap_id}"


def snapshot_ad(snap_id: str) -> bytes:
    return b"strongroom snapshot " + bytes.fromhex(snap_id)


def chunk_list_hasher() -> "blake3.blake3":
    """The digest of a version-2 manifest: BLAKE3 (unkeyed) of every tree blob's plaintext
    in image order, i.e. of the whole chunk list (id and length of every chunk)."""
    return blake3.blake3(max_threads=1)


def decode_tree(raw: bytes) -> tuple[list[bytes], list[int]]:
    ids, lengths = [], []
    for cid, length in TREE_ENTRY.iter_unpack(raw):
        ids.append(cid)
        lengths.append(length)
    return ids, lengths


def seal_manifest(sealer: Sealer, id_key: bytes, manifest: Manifest) -> tuple[str, bytes]:
    plain = manifest.encode()
    snap_id = snapshot_id(id_key, plain)
    return snap_id, sealer.seal_object(plain, snapshot_ad(snap_id))


@dataclass
class PruneReport:
    """What a prune did (or, with ``dry_run``, would do). Bytes are bytes of store files."""

    dry_run: bool = False
    snapshots: int = 0          # snapshots whose data is kept
    packs: int = 0              # packs in the store when prune started
    store_bytes: int = 0        # their bytes
    needed_bytes: int = 0       # one stored copy of every blob a snapshot needs (the ideal)
    unused_bytes: int = 0       # blob bytes no snapshot needs (extra copies included)
    packs_deleted: int = 0
    packs_repacked: int = 0
    bytes_repacked: int = 0     # needed bytes copied from repacked packs into new ones
    bytes_freed: int = 0        # deleted packs and index deltas, minus what prune wrote
    packs_pending: int = 0      # marked as garbage; a later prune deletes them (see waiting_for)
    bytes_pending: int = 0
    packs_recovered: int = 0    # garbage packs that a newer snapshot turned out to need
    deltas_before: int = 0      # index deltas before and after consolidation
    deltas_after: int = 0
    waiting_for: list[str] = field(default_factory=list)  # operations the pending packs wait for
    seconds: float = 0.0


@dataclass
class KeptSnapshot:
    id: str
    time: str
    name: str
    reasons: list[str]   # readable: "daily 2026-11-30", "last", "within 10d"
    matches: list[str]   # restic's own strings, as `restic forget --json` prints them


@dataclass
class RemovedSnapshot:
    id: str
    time: str
    name: str


@dataclass
class ForgetGroup:
    """One group of snapshots that a policy is applied to, and what it keeps and removes."""

    label: str
    key: dict[str, str]
    keep: list[KeptSnapshot] = field(default_factory=list)
    remove: list[RemovedSnapshot] = field(default_factory=list)


@dataclass
class ForgetReport:
    dry_run: bool = False
    groups: list[ForgetGroup] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # ids of the snapshots removed
    prune: PruneReport | None = None
