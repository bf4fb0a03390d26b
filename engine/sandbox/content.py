"""Seeded volume contents for the sandbox: real ext4 file systems in sparse files.

Each volume is a sparse file of the volume's full size (>= 5 GB, but only the data is allocated):
- "ext4": `mke2fs -t ext4 -d` of a generated tree of realistic files (config and notes, logs,
  CSV exports, random binaries, a small SQLite database, a few duplicates, symlinks, nested
  directories, a name with markup characters). The same seed gives the same bytes: fixed UUID
  and hash seed, `E2FSPROGS_FAKE_TIME`, fixed file times, and inode ctimes set with debugfs
  (mke2fs copies them from the source tree, where they cannot be chosen).
- "luks": a real LUKS2 header (engine/sandbox/luks.py, deterministic, no cryptsetup needed; the
  passphrase is `luks_key(seed, id)`, never stored), followed by ciphertext-like data.
- "empty": all holes.

Profiles: "small" (about 1 MiB of data per volume, for tests) and "demo" (tens of MiB per volume).
`build_volumes` builds what is missing into `<state_dir>/volumes/<id>.raw` and records what it
built in a manifest beside it, so a restarted sandbox reuses them; with a `cache_dir`, volumes
are generated there once and copied (sparsely) into each state dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from random import Random
from typing import Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from engine.errors import OperationError
from engine.sandbox.luks import DATA_OFFSET as LUKS_HEADER
from engine.sandbox.luks import write_luks2_header
from engine.sandbox.qcow2 import data_ranges

Kind = Literal["ext4", "luks", "empty"]
GENERATOR_VERSION = 3  # bump when the generated content changes: cached volumes are rebuilt
PROFILE_BYTES = {"small": 1 << 20, "demo": 40 << 20}  # generated data per ext4 volume
EPOCH = 1_790_000_000  # 2026-09-21: file times of generated trees count from here
MIN_SIZE = 64 << 20


@dataclass(frozen=True)
class VolumeSpec:
    """A seed volume. `flavor` picks the theme of its files: app, web, db or home."""

    id: str
    size: int
    kind: Kind = "ext4"
    flavor: str = "app"
    label: str = ""


def volume_file(state_dir: Path, volume_id: str) -> Path:
    """Where the sparse file holding a volume's bytes lives in a state dir."""
    return Path(state_dir) / "volumes" / f"{volume_id}.raw"


def _seed_bytes(seed: int, *parts: str) -> bytes:
    return hashlib.sha256("\0".join([str(seed), *parts]).encode()).digest()


class _Stream:
    """Deterministic pseudo-random bytes (ChaCha20 keystream): fast, good enough for content."""

    def __init__(self, key: bytes) -> None:
        self._enc = Cipher(algorithms.ChaCha20(key[:32], bytes(16)), None).encryptor()

    def bytes(self, n: int) -> bytes:
        return self._enc.update(bytes(n))


# --- generated files -------------------------------------------------------------------------

_WORDS = (
    "backup restore volume snapshot bucket region latency request cache queue worker session "
    "invoice customer order payment refund shipment warehouse report schedule deploy release "
    "config token metric alert disk network memory cpu storage index query migration cluster"
).split()
_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
_PATHS = ("/api/orders", "/api/customers", "/health", "/login", "/static/app.js", "/api/invoices")
_CITIES = ("Paris", "Amsterdam", "Warsaw", "Lyon", "Lille", "Rotterdam", "Krakow", "Nantes")


class _TreeWriter:
    """Writes files under a root within a byte budget, remembering every path it made."""

    def __init__(self, root: Path, rng: Random, stream: _Stream) -> None:
        self.root = root
        self.rng = rng
        self.stream = stream
        self.written = 0
        self.paths: list[str] = []
        self._log_pool: list[str] = []
        self._csv_pool: list[str] = []

    def write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.written += len(data)
        self.paths.append(rel)

    def symlink(self, rel: str, target: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
        self.paths.append(rel)

    def sentence(self, words: int) -> str:
        return " ".join(self.rng.choice(_WORDS) for _ in range(words))

    def _picks(self, count: int, choices: int) -> list[int]:
        """`count` indexes below `choices` from the keystream (much faster than Random)."""
        return [v % choices for v in memoryview(self.stream.bytes(count * 4)).cast("I")]

    def log(self, lines: int, day_start: int) -> bytes:
        """A day of log lines: timestamps in order, bodies drawn from a seeded pool."""
        rng = self.rng
        if self._log_pool:
            pool = self._log_pool
        else:
            pool = self._log_pool = self._make_log_pool()
        date = time.strftime("%Y-%m-%d", time.gmtime(day_start))
        picks = self._picks(lines, len(pool))
        ids = self._picks(lines, 1 << 30)
        out = []
        for n in range(lines):
            minutes, second = divmod(n * 86400 // lines, 60)
            hour, minute = divmod(minutes, 60)
            out.append(f"{date}T{hour:02d}:{minute:02d}:{second:02d}Z {pool[picks[n]]} req={ids[n]:08x}")
        return ("\n".join(out) + "\n").encode()

    def _make_log_pool(self) -> list[str]:
        rng = self.rng
        pool = []
        for _ in range(997):
            level = rng.choice(_LEVELS)
            if rng.random() < 0.6:
                pool.append(
                    f"{level} http {rng.choice(('GET', 'POST'))} {rng.choice(_PATHS)} "
                    f"status={rng.choice((200, 200, 200, 201, 304, 404, 500))} ms={rng.randint(1, 900)}"
                )
            else:
                pool.append(f"{level} worker {self.sentence(rng.randint(4, 12))}")
        return pool

    def csv(self, rows: int, day: int) -> bytes:
        """Order rows: a running id, then customer/city/amount/status drawn from a seeded pool."""
        rng = self.rng
        stamp = time.strftime("%Y-%m-%d", time.gmtime(day))
        if not self._csv_pool:
            self._csv_pool = [
                f"cust-{rng.randint(1, 5000):05d},{rng.choice(_CITIES)},"
                f"{rng.randint(100, 999999) / 100:.2f},{rng.choice(('paid', 'paid', 'open', 'refunded'))}"
                for _ in range(4093)
            ]
        pool = self._csv_pool
        picks = self._picks(rows, len(pool))
        out = ["id,customer,city,amount_eur,status,created_at"]
        out.extend(f"{n + 1},{pool[picks[n]]},{stamp}" for n in range(rows))
        return ("\n".join(out) + "\n").encode()


def _sqlite(path: Path, rng: Random, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT)")
        db.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL, note TEXT)"
        )
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)",
            [(n, f"Customer {n}", rng.choice(_CITIES)) for n in range(1, rows // 4 + 2)],
        )
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [
                (n, rng.randint(1, rows // 4 + 1), rng.randint(100, 99999) / 100, rng.choice(_WORDS))
                for n in range(1, rows + 1)
            ],
        )
        db.commit()
    finally:
        db.close()


def generate_tree(root: Path, seed: int, volume_id: str, budget: int, flavor: str = "app") -> list[str]:
    """Fill `root` with about `budget` bytes of realistic files; return their relative paths.

    Deterministic in (seed, volume_id, budget, flavor), including file and directory times.
    """
    rng = Random(_seed_bytes(seed, volume_id, "tree"))
    tree = _TreeWriter(root, rng, _Stream(_seed_bytes(seed, volume_id, "bytes")))
    host = f"{flavor}-{rng.randint(1, 99):02d}"
    tree.write("etc/hostname", f"{host}\n".encode())
    tree.write(
        f"etc/{flavor}/{flavor}.conf",
        "".join(f"{w} = {rng.randint(1, 10000)}\n" for w in rng.sample(_WORDS, 12)).encode(),
    )
    tree.write("home/ops/notes.md", f"# Notes for {host}\n\n{tree.sentence(80)}\n".encode())
    # names that look like markup (the first is a directory "[bold]x[" holding "].txt")
    tree.write("home/ops/[bold]x[/].txt", b"a file name that looks like markup\n")
    tree.write("home/ops/[red]alert[reset].txt", b"another one\n")
    tree.write("home/ops/report 2026 (final).txt", f"{tree.sentence(40)}\n".encode())
    _sqlite(root / f"srv/{flavor}/db/{flavor}.sqlite", rng, max(200, budget // 2000))
    tree.paths.append(f"srv/{flavor}/db/{flavor}.sqlite")
    binaries = budget * 2 // 5
    logs = budget * 3 // 10
    csvs = budget // 5
    # file sizes scale with the budget so that even the small profile has many files
    unit = max(16 << 10, min(budget // 16, 384 << 10))
    n = 0
    while binaries > 0:
        size = min(binaries, rng.randint(unit // 2, unit * 3 // 2))
        tree.write(f"opt/{flavor}/lib/blob-{n:03d}.bin", tree.stream.bytes(size))
        binaries -= size
        n += 1
    day = EPOCH - 30 * 86400
    for n in range(max(1, logs // unit)):
        tree.write(f"var/log/{flavor}/{flavor}.log.{n}" if n else f"var/log/{flavor}/{flavor}.log",
                   tree.log(max(50, unit // 110), day - n * 86400))
    for n in range(max(1, csvs // unit)):
        when = time.gmtime(day + n * 86400)
        tree.write(
            f"srv/{flavor}/exports/{when.tm_year}/{when.tm_mon:02d}/orders-{when.tm_mday:02d}.csv",
            tree.csv(max(20, unit // 50), day + n * 86400),
        )
    # identical copies, as real disks have (dedup has something to find)
    tree.write(f"backups/{flavor}.sqlite.bak", (root / f"srv/{flavor}/db/{flavor}.sqlite").read_bytes())
    tree.write(f"backups/blob-000.bin.orig", (root / f"opt/{flavor}/lib/blob-000.bin").read_bytes())
    tree.symlink(f"var/log/{flavor}/current", f"{flavor}.log")
    tree.symlink(f"opt/{flavor}/lib/latest.bin", "blob-000.bin")
    tree.symlink("home/ops/db", f"../../srv/{flavor}/db")
    _fix_times(root, rng)
    return sorted(tree.paths)


def _fix_times(root: Path, rng: Random) -> None:
    """Give every entry a deterministic atime/mtime (children first: that changes dir mtimes)."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in sorted(filenames + dirnames):
            stamp = EPOCH - rng.randint(0, 90 * 86400)
            os.utime(os.path.join(dirpath, name), (stamp, stamp), follow_symlinks=False)
        os.utime(dirpath, (EPOCH, EPOCH))


# --- volumes ---------------------------------------------------------------------------------


def _uuid(seed: int, volume_id: str, what: str) -> str:
    h = _seed_bytes(seed, volume_id, what).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


# e2fsprogs' tools live in /usr/sbin (or /sbin), which is not on a Debian user's PATH
SBIN = ("/usr/sbin", "/sbin")


def tool(name: str) -> str:
    """The path of an e2fsprogs tool, looked for on PATH and then in the sbin folders."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    if found is None:
        raise OperationError(f"{name} not found (the sandbox builds its volumes' ext4 file "
                             "systems with it): install e2fsprogs, e.g. apt install e2fsprogs")
    return found


def _run(args: list[str], **kwargs: object) -> None:
    args = [tool(args[0]), *args[1:]]
    answer = subprocess.run(args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if answer.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({answer.returncode}): {answer.stderr.strip()[-400:]}")


def build_ext4(dest: Path, size: int, seed: int, volume_id: str, budget: int, flavor: str = "app",
               label: str = "", extra: Mapping[str, bytes] | None = None) -> list[str]:
    """Make `dest` a sparse ext4 image of `size` bytes filled with a generated tree.

    `extra` ({relative path: bytes}) adds files the caller knows byte for byte (end-to-end tests
    compare what comes back out of a backup with them).
    """
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(EPOCH))
    with tempfile.TemporaryDirectory(prefix="tree-", dir=dest.parent) as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        paths = generate_tree(root, seed, volume_id, budget, flavor)
        for rel, data in (extra or {}).items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            os.utime(target, (EPOCH, EPOCH))
            paths.append(rel)
        # from the paths: walking the tree again would change the directories' atimes
        entries = {"/".join(p.split("/")[: n + 1]) for p in paths for n in range(p.count("/") + 1)}
        dest.unlink(missing_ok=True)
        extended = (f"hash_seed={_uuid(seed, volume_id, 'hash')},"
                    "lazy_itable_init=1,lazy_journal_init=1,nodiscard")
        _run(
            ["mke2fs", "-q", "-t", "ext4", "-F", "-U", _uuid(seed, volume_id, "fs"),
             "-L", (label or flavor)[:16], "-E", extended, "-d", str(root), str(dest),
             str(size // 1024) + "k"],
            env=dict(os.environ, E2FSPROGS_FAKE_TIME=str(EPOCH)),
        )
    # mke2fs -d copied the real ctimes of the temporary tree: set them (generated names hold no
    # double quote, and debugfs does not follow a symlink named last)
    commands = "".join(f'sif "/{entry}" ctime {stamp}\n' for entry in ["", *sorted(entries)])
    _run(["debugfs", "-w", "-f", "-", str(dest)], input=commands,
         env=dict(os.environ, E2FSPROGS_FAKE_TIME=str(EPOCH)))
    return paths


def luks_key(seed: int, volume_id: str) -> bytes:
    """The key of a generated LUKS volume (derived, never written to the state dir)."""
    return _seed_bytes(seed, volume_id, "luks-key")


def build_luks(dest: Path, size: int, seed: int, volume_id: str, budget: int) -> None:
    """Make `dest` a sparse volume with a LUKS2 header and ciphertext-like data after it."""
    with open(dest, "wb") as out:
        out.truncate(size)
        write_luks2_header(out, luks_key(seed, volume_id), _uuid(seed, volume_id, "luks"),
                           _seed_bytes(seed, volume_id, "luks-entropy"))
    stream = _Stream(_seed_bytes(seed, volume_id, "ciphertext"))
    rng = Random(_seed_bytes(seed, volume_id, "luks-layout"))
    with open(dest, "r+b") as out:
        written, area = 0, size - LUKS_HEADER
        while written < budget and area > 0:
            length = min(budget - written, rng.randint(1, 32) * 65536)
            out.seek(LUKS_HEADER + rng.randrange(0, max(1, area - length)) // 4096 * 4096)
            out.write(stream.bytes(length))
            written += length


def build_volume(spec: VolumeSpec, dest: Path, seed: int = 0, profile: str = "demo") -> None:
    """Build one seed volume file at `dest` (replacing it)."""
    if spec.size < MIN_SIZE:
        raise ValueError(f"volume {spec.id}: size {spec.size} is below {MIN_SIZE}")
    budget = PROFILE_BYTES[profile]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".building")
    tmp.unlink(missing_ok=True)
    if spec.kind == "ext4":
        build_ext4(tmp, spec.size, seed, spec.id, budget, spec.flavor, spec.label)
    elif spec.kind == "luks":
        build_luks(tmp, spec.size, seed, spec.id, budget)
    elif spec.kind == "empty":
        with open(tmp, "wb") as out:
            out.truncate(spec.size)
    else:
        raise ValueError(f"volume {spec.id}: unknown kind {spec.kind!r}")
    tmp.rename(dest)


def copy_sparse(src: Path, dest: Path) -> None:
    """Copy a sparse file, copying only its data ranges (holes stay holes)."""
    tmp = dest.with_name(dest.name + ".copying")
    size = src.stat().st_size
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        fout.truncate(size)
        for start, stop in data_ranges(fin.fileno(), size):
            offset = start
            while offset < stop:
                done = os.copy_file_range(fin.fileno(), fout.fileno(), stop - offset, offset, offset)
                if done == 0:
                    break
                offset += done
    tmp.rename(dest)


def _manifest(spec: VolumeSpec, seed: int, profile: str) -> dict:
    return {"spec": asdict(spec), "seed": seed, "profile": profile, "generator": GENERATOR_VERSION}


def build_volumes(state_dir: Path, specs: Iterable[VolumeSpec], seed: int = 0,
                  profile: str = "demo", cache_dir: Path | None = None,
                  workers: int = 2) -> dict[str, Path]:
    """Make sure every spec's volume file exists in `state_dir`; return {id: path}.

    A volume already built from the same spec, seed, profile and generator is kept as is (it may
    have been written since: it is the volume's state). With `cache_dir`, volumes are built there
    once and copied sparsely into the state dir. `workers` volumes are built at a time (mke2fs,
    debugfs and the keystream run outside the GIL).
    """
    if profile not in PROFILE_BYTES:
        raise ValueError(f"unknown content profile {profile!r} (small or demo)")
    specs = list(specs)
    for spec in specs:
        if spec.kind not in ("ext4", "luks", "empty"):
            raise ValueError(f"volume {spec.id}: unknown kind {spec.kind!r}")

    def ensure(spec: VolumeSpec) -> Path:
        dest = volume_file(state_dir, spec.id)
        manifest = _manifest(spec, seed, profile)
        if not _is_built(dest, manifest):
            if cache_dir is not None:
                cached = volume_file(cache_dir, spec.id)
                if not _is_built(cached, manifest):
                    build_volume(spec, cached, seed, profile)
                    _write_manifest(cached, manifest)
                dest.parent.mkdir(parents=True, exist_ok=True)
                copy_sparse(cached, dest)
            else:
                build_volume(spec, dest, seed, profile)
            _write_manifest(dest, manifest)
        return dest

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(zip([spec.id for spec in specs], pool.map(ensure, specs)))


def _manifest_path(volume: Path) -> Path:
    return volume.with_suffix(".json")


def _is_built(volume: Path, manifest: dict) -> bool:
    try:
        return volume.exists() and json.loads(_manifest_path(volume).read_text()) == manifest
    except (OSError, ValueError):
        return False


def _write_manifest(volume: Path, manifest: dict) -> None:
    _manifest_path(volume).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
