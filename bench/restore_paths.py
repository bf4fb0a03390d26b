#!/usr/bin/env python3
"""Which way should a file restore write? The restore paths side by side, in one process.

Backs up v1 (bench/make_images.py) into a fresh local store, then restores it, alternating,
with each of:

- ``packwise``: pack order, each decoded blob written with pwrite through the page cache at
  its offsets (what version-2 snapshots use: no whole-image hash to feed in order);
- ``in-order``: segments assembled in memory and written in order, in whole pages with
  O_DIRECT where the file system allows it (version-1 snapshots, ``--sha256``);
- ``in-order+sha256``: the same, also feeding SHA-256 (the cost of ``--sha256``);

onto the store's disk and onto tmpfs (/dev/shm), and prints the median wall and CPU seconds
(user + system of this process) of each. The page cache is not dropped between rounds; each
output file is deleted first, as a restore writes a new file.

    python bench/restore_paths.py [--size 1.2G] [--rounds 3] [--tmpfs /dev/shm]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from make_images import ensure_images, parse_size
from measure import BENCH_DIR, load, repo_root, sha256_file

sys.path.insert(0, str(repo_root()))

from engine.store import restorer  # noqa: E402
from engine.store.store import Store  # noqa: E402

PASSPHRASE = "bench-passphrase-not-secret"


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def restore_once(store: Store, snap: str, out: Path, way: str) -> tuple[float, float]:
    manifest = store._manifest(snap)
    reader = store._reader()
    if out.exists():
        out.unlink()
    t, c = time.monotonic(), cpu()
    if way == "packwise":
        restorer.restore_to_path(reader, manifest, out, None, None)
    else:  # force the in-order path: a version-1-like digest check is skipped, not the work
        restorer.restore_to_path(reader, manifest, out, None, None,
                                 sha256=way == "in-order+sha256",
                                 in_order=True)
    return time.monotonic() - t, cpu() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1.2G")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tmpfs", default="/dev/shm")
    args = ap.parse_args()
    os.environ.setdefault("STRONGROOM_KDF_MEMORY_KIB", "8192")
    images = ensure_images(parse_size(args.size), 1, log=lambda m: print(m, file=sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="restore-paths-", dir=BENCH_DIR / "work"))
    shm = Path(tempfile.mkdtemp(prefix="restore-paths-", dir=args.tmpfs))
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    try:
        url = str(work / "store")
        Store.init(url, PASSPHRASE).close()
        with Store.open(url, PASSPHRASE) as store, open(images.v1, "rb") as f:
            info = store.backup(f, name="v1").snapshot
            want = sha256_file(images.v1)
            ways = ("packwise", "in-order", "in-order+sha256")
            targets = {"disk": work / "out.img", "tmpfs": shm / "out.img"}
            figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
            print(f"load before {load()}", file=sys.stderr)
            for r in range(args.rounds):
                for where, out in targets.items():
                    for way in ways:
                        figures.setdefault((where, way), []).append(
                            restore_once(store, info.id, out, way))
                        if r == 0 and sha256_file(out) != want:
                            raise SystemExit(f"{way} to {where}: restored bytes differ")
                        out.unlink()
        size = images.v1.stat().st_size
        print(f"v1 {size / 2**20:.0f} MiB, {args.rounds} rounds, median; load after {load()}\n")
        print(f"{'target':<7} {'way':<16} {'wall s':>7} {'CPU s':>6} {'MB/s':>6}")
        for (where, way), runs in figures.items():
            wall = statistics.median(w for w, _ in runs)
            c = statistics.median(c for _, c in runs)
            print(f"{where:<7} {way:<16} {wall:>7.2f} {c:>6.2f} {size / 1e6 / wall:>6.0f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
