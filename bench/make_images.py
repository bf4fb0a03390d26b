#!/usr/bin/env python3
"""Build two realistic disk images, v1 and v2, for the benchmarks.

v1: an ext4 filesystem (``mke2fs -d``) holding a seeded, deterministic mix of text (logs, CSV,
source code), incompressible random binaries, copies of system libraries and programs, and SQLite
databases with many rows; converted to QCOW2 with ``qemu-img convert``. v2: the same tree with
~5% of the files changed in place (appends, rewritten ranges, SQLite updates/inserts/deletes),
a few files deleted and ~1% new data added, then built into ext4 + QCOW2 again.

Outputs are cached in ``bench/work/images/<key>/`` (key = size, seed, generator version), so a
second run is instant. Run ``python bench/make_images.py --help``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# Bump when the generated content changes, so stale caches are not reused.
GENERATOR_VERSION = 1
BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / "work"
MiB = 1 << 20
GiB = 1 << 30
FIXED_MTIME = 1_700_000_000  # deterministic timestamps inside the filesystem
FS_UUID = "5f1e0f6c-5b1a-4d3e-9c1e-0b5e7d1a2c3f"

# Share of the data size per kind of content.
MIX = {"text": 0.30, "random": 0.20, "syslib": 0.25, "sqlite": 0.25}
CHANGED_FILES = 0.05
DELETED_FILES = 0.005
NEW_DATA = 0.01


@dataclass(frozen=True)
class FileSpec:
    path: str    # relative to the tree root
    kind: str    # log, csv, source, random, sqlite
    size: int    # approximate target size in bytes
    seed: int


@dataclass
class Images:
    v1: Path
    v2: Path
    data_bytes: int       # bytes of file data in v1
    fs_bytes: int         # size of the ext4 filesystem (virtual disk size)
    files_v1: int
    files_v2: int
    changed: int
    deleted: int
    added_bytes: int
    build_seconds: float


# ---------------------------------------------------------------- content generators

def stream_bytes(seed_material: str, n: int) -> bytes:
    """Deterministic incompressible bytes (AES-CTR keystream), far faster than random.randbytes."""
    key = hashlib.sha256(seed_material.encode()).digest()
    enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    return enc.update(bytes(n))


WORDS = ("request served user session cache miss hit timeout retry connection pool database "
         "query commit rollback worker started stopped heartbeat scheduler queue enqueue job done "
         "failed error warning upstream latency bytes read write flush sync volume snapshot "
         "export import bucket object upload download token refresh auth denied granted config "
         "reload shard replica leader follower election index compaction segment merge").split()
LEVELS = ("INFO",) * 12 + ("DEBUG",) * 6 + ("WARN",) * 2 + ("ERROR",)
COMPONENTS = ("api", "db", "auth", "sched", "store", "http", "grpc", "cache", "worker", "s3")
IDENT = ("value count index buffer result items config handler client server state node key "
         "offset length total path name data options context request response").split()


def gen_log(rng: random.Random, size: int) -> Iterator[str]:
    ts = 1_690_000_000.0 + rng.random() * 1e7
    host = f"node-{rng.randrange(100):02d}"
    out = 0
    while out < size:
        lines = []
        for _ in range(256):
            ts += rng.expovariate(20.0)
            msg = " ".join(rng.choices(WORDS, k=rng.randrange(3, 12)))
            line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ts))}.{int(ts * 1000) % 1000:03d}Z "
                    f"{host} {rng.choice(LEVELS):5} [{rng.choice(COMPONENTS)}] {msg} "
                    f"id={rng.getrandbits(48):012x} dur={rng.random() * 500:.1f}ms\n")
            lines.append(line)
        block = "".join(lines)
        out += len(block)
        yield block


def gen_csv(rng: random.Random, size: int) -> Iterator[str]:
    cols = rng.randrange(5, 12)
    yield ",".join(f"col_{i}" for i in range(cols)) + "\n"
    out = 0
    row = 0
    while out < size:
        lines = []
        for _ in range(512):
            row += 1
            fields = [str(row)]
            for c in range(1, cols):
                k = (c * 7 + cols) % 4
                if k == 0:
                    fields.append(f"{rng.gauss(1000, 300):.3f}")
                elif k == 1:
                    fields.append(str(rng.randrange(1_000_000)))
                elif k == 2:
                    fields.append(rng.choice(WORDS))
                else:
                    fields.append(f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}")
            lines.append(",".join(fields) + "\n")
        block = "".join(lines)
        out += len(block)
        yield block


def gen_source(rng: random.Random, size: int) -> Iterator[str]:
    out = 0
    n = 0
    while out < size:
        n += 1
        name = "_".join(rng.choices(IDENT, k=2)) + str(n)
        args = ", ".join(rng.sample(IDENT, rng.randrange(1, 4)))
        body = []
        for _ in range(rng.randrange(3, 15)):
            a, b = rng.sample(IDENT, 2)
            body.append(rng.choice((
                f"    {a} = {b} + {rng.randrange(100)}\n",
                f"    if {a} > {b}:\n        return {a}\n",
                f"    for {a} in range({b}):\n        total += {a}\n",
                f"    # {' '.join(rng.choices(WORDS, k=6))}\n",
                f"    {a}.append({b}[{rng.randrange(16)}])\n",
            )))
        block = f"\ndef {name}({args}):\n    \"\"\"{' '.join(rng.choices(WORDS, k=8))}.\"\"\"\n" + "".join(body)
        out += len(block)
        yield block


TEXT_GENERATORS = {"log": gen_log, "csv": gen_csv, "source": gen_source}


def write_text(path: Path, kind: str, size: int, rng: random.Random) -> None:
    with open(path, "w", encoding="ascii") as f:
        for block in TEXT_GENERATORS[kind](rng, size):
            f.write(block)


def write_random(path: Path, size: int, seed: int) -> None:
    with open(path, "wb") as f:
        done = 0
        while done < size:
            n = min(8 * MiB, size - done)
            f.write(stream_bytes(f"{seed}:{done}", n))
            done += n


def sqlite_rows(rng: random.Random, start: int, count: int) -> Iterator[tuple]:
    for i in range(start, start + count):
        yield (i, f"{rng.choice(WORDS)}_{rng.getrandbits(32):08x}@example.com",
               rng.randrange(1, 10_000), round(rng.gauss(120, 40), 2),
               1_690_000_000 + rng.randrange(10_000_000),
               " ".join(rng.choices(WORDS, k=rng.randrange(2, 10))),
               rng.getrandbits(64).to_bytes(8, "little") * rng.randrange(1, 4))


def write_sqlite(path: Path, size: int, rng: random.Random) -> None:
    db = sqlite3.connect(path)
    db.executescript("""
        PRAGMA page_size = 4096; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
        CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT, customer INTEGER, amount REAL,
                             created INTEGER, note TEXT, token BLOB);
        CREATE INDEX orders_customer ON orders (customer);
        CREATE INDEX orders_created ON orders (created);
    """)
    rows = 0
    batch = max(500, min(20_000, size // 400))
    # ~160 bytes per row with its two index entries; check the real size now and then
    while True:
        db.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?)", sqlite_rows(rng, rows + 1, batch))
        rows += batch
        db.commit()
        if path.stat().st_size >= size:
            break
    db.close()


def generate(spec: FileSpec, root: str) -> int:
    path = Path(root) / spec.path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(spec.seed)
    if spec.kind in TEXT_GENERATORS:
        write_text(path, spec.kind, spec.size, rng)
    elif spec.kind == "random":
        write_random(path, spec.size, spec.seed)
    elif spec.kind == "sqlite":
        write_sqlite(path, spec.size, rng)
    else:
        raise ValueError(spec.kind)
    return path.stat().st_size


def _generate_star(args: tuple[FileSpec, str]) -> int:
    return generate(*args)


# ---------------------------------------------------------------- planning the tree

def lognormal_size(rng: random.Random, median: int, sigma: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, rng.lognormvariate(0, sigma) * median)))


def plan_generated(rng: random.Random, budget: dict[str, int], prefix: str = "") -> list[FileSpec]:
    specs: list[FileSpec] = []
    text_kinds = (("log", "var/log", ".log", 2 * MiB), ("csv", "srv/data", ".csv", 1 * MiB),
                  ("source", "home/dev/src", ".py", 24 * 1024))
    per_text = budget.get("text", 0) // 3
    for kind, folder, ext, median in text_kinds:
        used = 0
        while used < per_text:
            size = min(lognormal_size(rng, median, 1.2, 2048, 48 * MiB), per_text - used + 2048)
            sub = f"{folder}/{prefix}d{rng.randrange(12):02d}"
            specs.append(FileSpec(f"{sub}/{kind}-{len(specs):05d}{ext}", kind, size, rng.getrandbits(63)))
            used += size
    used = 0
    while used < budget.get("random", 0):
        size = min(lognormal_size(rng, 4 * MiB, 1.3, 4096, 96 * MiB), budget["random"] - used + 4096)
        folder = rng.choice(("opt/app/blobs", "srv/media", "var/cache/objects"))
        specs.append(FileSpec(f"{folder}/{prefix}b{rng.randrange(8)}/blob-{len(specs):05d}.bin",
                              "random", size, rng.getrandbits(63)))
        used += size
    used = 0
    while used < budget.get("sqlite", 0):
        size = min(lognormal_size(rng, 24 * MiB, 0.6, 2 * MiB, 80 * MiB), budget["sqlite"] - used + 256 * 1024)
        specs.append(FileSpec(f"var/lib/db/{prefix}store-{len(specs):04d}.sqlite", "sqlite", size,
                              rng.getrandbits(63)))
        used += size
    return specs


def system_files() -> list[Path]:
    found: list[Path] = []
    for folder, pattern in ((Path("/usr/lib/x86_64-linux-gnu"), "*.so*"), (Path("/usr/bin"), "*")):
        for p in sorted(folder.glob(pattern)):
            if p.is_file() and not p.is_symlink():
                found.append(p)
    return found


def copy_system_files(rng: random.Random, root: Path, budget: int) -> int:
    candidates = system_files()
    rng.shuffle(candidates)
    used = 0
    for src in candidates:
        if used >= budget:
            break
        size = src.stat().st_size
        if size == 0 or size > 64 * MiB:
            continue
        sub = "usr/lib" if ".so" in src.name else "usr/bin"
        dst = root / sub / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(src, dst)
        except OSError:
            continue
        used += size
    return used


def run_specs(specs: list[FileSpec], root: Path, jobs: int) -> int:
    # biggest first, so the two workers finish together
    ordered = sorted(specs, key=lambda s: -s.size)
    with multiprocessing.Pool(jobs) as pool:
        return sum(pool.imap_unordered(_generate_star, [(s, str(root)) for s in ordered]))


# ---------------------------------------------------------------- v2 changes

def modify_file(path: Path, rng: random.Random) -> None:
    """Change one file in place the way its kind usually changes."""
    name = path.name
    size = path.stat().st_size
    if name.endswith((".log", ".csv")):
        # logs and exports grow at the end
        kind = "log" if name.endswith(".log") else "csv"
        grow = max(4096, int(size * rng.uniform(0.01, 0.10)))
        with open(path, "a", encoding="ascii") as f:
            for block in TEXT_GENERATORS[kind](rng, grow):
                f.write(block)
    elif name.endswith(".py"):
        # an edit in the middle shifts everything after it
        text = path.read_text(encoding="ascii")
        cut = rng.randrange(len(text) + 1)
        insert = "".join(gen_source(rng, rng.randrange(200, 4000)))
        path.write_text(text[:cut] + insert + text[cut + rng.randrange(0, 2000):], encoding="ascii")
    elif name.endswith(".sqlite"):
        db = sqlite3.connect(path)
        (max_id,) = db.execute("SELECT max(id) FROM orders").fetchone()
        n = max(100, max_id // 50)
        for _ in range(n // 10):
            db.execute("UPDATE orders SET amount = amount * 1.1, note = ? WHERE id = ?",
                       (" ".join(rng.choices(WORDS, k=5)), rng.randrange(1, max_id + 1)))
        lo = rng.randrange(1, max(2, max_id - n // 4))
        db.execute("DELETE FROM orders WHERE id BETWEEN ? AND ?", (lo, lo + n // 20))
        db.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?)", sqlite_rows(rng, max_id + 1, n))
        db.commit()
        db.close()
    else:
        # binaries and blobs: a few ranges rewritten in place (patched build, updated object)
        with open(path, "r+b") as f:
            for i in range(rng.randrange(1, 4)):
                length = min(size, rng.randrange(4096, 65536))
                at = rng.randrange(0, max(1, size - length))
                f.seek(at)
                f.write(stream_bytes(f"patch:{path.name}:{i}:{at}", length))


def make_v2(v1_root: Path, v2_root: Path, seed: int, data_bytes: int, jobs: int) -> dict[str, int]:
    shutil.copytree(v1_root, v2_root, symlinks=True)
    rng = random.Random(seed ^ 0x5EC0D)
    files = sorted(p for p in v2_root.rglob("*") if p.is_file())
    rng.shuffle(files)
    n_changed = max(1, round(len(files) * CHANGED_FILES))
    n_deleted = max(1, round(len(files) * DELETED_FILES))
    for p in files[:n_changed]:
        modify_file(p, rng)
    for p in files[n_changed:n_changed + n_deleted]:
        p.unlink()
    new = NEW_DATA * data_bytes
    budget = {"text": int(new * 0.5), "random": int(new * 0.3), "sqlite": int(new * 0.2)}
    added = run_specs(plan_generated(rng, budget, prefix="new-"), v2_root, jobs)
    return {"changed": n_changed, "deleted": n_deleted, "added_bytes": added}


# ---------------------------------------------------------------- filesystem and QCOW2

def set_mtimes(root: Path) -> None:
    for p in root.rglob("*"):
        os.utime(p, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    os.utime(root, (FIXED_MTIME, FIXED_MTIME))


def tree_bytes(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def build_qcow2(root: Path, fs_bytes: int, out: Path) -> None:
    set_mtimes(root)
    raw = out.with_suffix(".raw")
    raw.unlink(missing_ok=True)
    with open(raw, "wb") as f:
        f.truncate(fs_bytes)
    env = dict(os.environ, E2FSPROGS_FAKE_TIME=str(FIXED_MTIME))
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-L", "benchvol",
                    "-U", FS_UUID, "-E", f"hash_seed={FS_UUID},lazy_itable_init=0",
                    "-d", str(root), str(raw)], check=True, env=env)
    tmp = out.with_suffix(".qcow2.tmp")
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(tmp)], check=True)
    tmp.rename(out)
    raw.unlink()


def cache_dir(size: int, seed: int) -> Path:
    return WORK_DIR / "images" / f"size{size}-seed{seed}-gen{GENERATOR_VERSION}"


def ensure_images(size: int = int(1.2 * GiB), seed: int = 1, jobs: int = 2,
                  force: bool = False, keep_trees: bool = False, log=print) -> Images:
    """Return the cached v1/v2 QCOW2 images for (size, seed), building them if needed."""
    out = cache_dir(size, seed)
    meta_path = out / "meta.json"
    if meta_path.exists() and not force:
        meta = json.loads(meta_path.read_text())
        # where the cache is now (it may have been copied from another checkout)
        meta["v1"], meta["v2"] = out / "v1.qcow2", out / "v2.qcow2"
        return Images(**meta)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.monotonic()
    rng = random.Random(seed)
    v1_root, v2_root = out / "tree-v1", out / "tree-v2"
    v1_root.mkdir()
    budget = {k: int(size * share) for k, share in MIX.items()}
    log(f"copying ~{budget['syslib'] / MiB:.0f} MiB of system libraries and programs")
    copy_system_files(rng, v1_root, budget["syslib"])
    specs = plan_generated(rng, budget)
    log(f"generating {len(specs)} files (text, random, sqlite) on {jobs} processes")
    run_specs(specs, v1_root, jobs)
    data_bytes, files_v1 = tree_bytes(v1_root)
    # the virtual disk: data + 25% free space + metadata room, rounded to 64 MiB
    fs_bytes = -(-int(data_bytes * 1.25 + 128 * MiB) // (64 * MiB)) * (64 * MiB)
    log(f"v1: {files_v1} files, {data_bytes / MiB:.0f} MiB; building ext4 ({fs_bytes / MiB:.0f} MiB) + QCOW2")
    build_qcow2(v1_root, fs_bytes, out / "v1.qcow2")
    log("v2: copying the tree, changing files, adding data")
    changes = make_v2(v1_root, v2_root, seed, data_bytes, jobs)
    _, files_v2 = tree_bytes(v2_root)
    build_qcow2(v2_root, fs_bytes, out / "v2.qcow2")
    if not keep_trees:
        shutil.rmtree(v1_root)
        shutil.rmtree(v2_root)
    images = Images(v1=out / "v1.qcow2", v2=out / "v2.qcow2", data_bytes=data_bytes,
                    fs_bytes=fs_bytes, files_v1=files_v1, files_v2=files_v2,
                    build_seconds=round(time.monotonic() - t0, 1), **changes)
    meta = asdict(images)
    meta["v1"], meta["v2"] = str(images.v1), str(images.v2)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return images


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": MiB, "g": GiB, "t": 1 << 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(float(t))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1.2G", help="data to generate in v1 (default 1.2G; K/M/G suffixes)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="generator processes (default 2)")
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    ap.add_argument("--keep-trees", action="store_true", help="keep the v1/v2 file trees")
    args = ap.parse_args()
    images = ensure_images(parse_size(args.size), args.seed, args.jobs, args.force, args.keep_trees,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    for label, path in (("v1", images.v1), ("v2", images.v2)):
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(path)],
                                         check=True, capture_output=True, text=True).stdout)
        print(f"{label}: {path}  qcow2 {path.stat().st_size / MiB:.0f} MiB, "
              f"virtual {info['virtual-size'] / MiB:.0f} MiB")
    print(f"data in v1: {images.data_bytes / MiB:.0f} MiB in {images.files_v1} files; v2: "
          f"{images.changed} files changed, {images.deleted} deleted, "
          f"{images.added_bytes / MiB:.1f} MiB added ({images.files_v2} files)")
    print(f"built in {images.build_seconds:.0f} s (cached in {images.v1.parent})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
