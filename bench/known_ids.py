#!/usr/bin/env python3
"""Memory and per-call cost of the backup's "do we already store this chunk?" (KnownIds).

For each store size (default 2 M and 16 M data ids: a 128 GiB and a 1 TiB store at 64 KiB
chunks), builds a SQLite index cache with that many random ids (cached in
bench/work/known_ids/), then, each in a fresh process so that RSS figures are its own:

  old set, load   the former KnownIds: a set of every id read from SQLite (the old code did this
                  up to 2 M ids, then asked SQLite for every chunk)
  old set, grow   the former KnownIds during a first backup of N chunks: every new id in the set
  new, load       KnownIds over the store's N ids
  new, grow       KnownIds during a first backup of N chunks (ids indexed per 512, as packs land)

and prints the resident memory each adds (RSS after − before, and the peak's growth), the time
to build it, and per-call costs: prefix test, exact `in` for absent and stored ids, batched
`confirm` (128 ids, as a worker does per 8 MiB buffer), and `add`.

    python bench/known_ids.py [--sizes 2,16] [--modes old-load,old-grow,new-load,new-grow]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from measure import BENCH_DIR, MiB, load, repo_root

MODES = ("old-load", "old-grow", "new-load", "new-grow")
SAMPLE = 20_000


def build_cache(n: int) -> Path:
    path = BENCH_DIR / "work" / "known_ids" / f"cache-{n}.sqlite"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    sys.path.insert(0, str(repo_root()))
    from engine.store.index import IndexCache

    IndexCache("bench", tmp).close()  # the real schema
    db = sqlite3.connect(tmp, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    # Sorted inserts fill the B-tree sequentially: minutes less than random ones at 16 M.
    db.execute(f"""INSERT INTO blobs WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1
                   FROM k WHERE x < {n}) SELECT id, 0, 'pack', x, 100, 100, 0 FROM
                   (SELECT randomblob(32) AS id, x FROM k ORDER BY id)""")
    db.close()
    tmp.rename(path)
    return path


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def per_call_us(fn, items: list) -> float:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - t0) / len(items) * 1e6


def child(mode: str, n: int, path: Path) -> dict:
    sys.path.insert(0, str(repo_root()))
    from engine.store.index import IndexCache
    from engine.store.known import KnownIds
    from engine.store.pack import BLOB_DATA

    rng = random.Random(1)
    cache = IndexCache("bench", path)
    with sqlite3.connect(path) as db:  # stored ids spread over the whole table, like real dedup
        present = [db.execute("SELECT id FROM blobs WHERE id >= ? LIMIT 1",
                              (rng.randbytes(32),)).fetchone() for _ in range(SAMPLE)]
    present = [row[0] for row in present if row]
    absent = [rng.randbytes(32) for _ in range(SAMPLE)]
    out: dict = {"mode": mode, "n": n}
    gc.collect()
    rss0, peak0, t0 = rss(), peak(), time.perf_counter()
    if mode == "old-load":
        ids = {row[0] for row in cache._db.execute("SELECT id FROM blobs WHERE type=0")}
    elif mode == "old-grow":
        ids = set()
        for _ in range(n):
            ids.add(rng.randbytes(32))
    elif mode == "new-load":
        known = KnownIds(cache)
    else:  # new-grow: an empty store, a first backup adding n chunks
        empty = IndexCache("bench", path.with_name("empty.sqlite"))
        known = KnownIds(empty)
        batch = []
        for _ in range(n):
            cid = rng.randbytes(32)
            known.add(cid)
            batch.append(cid)
            if len(batch) == 512:  # a pack lands in the SQLite cache
                known.indexed(batch)
                batch = []
    out["build_s"] = time.perf_counter() - t0
    gc.collect()
    out["rss_mib"] = (rss() - rss0) / MiB
    out["peak_mib"] = (peak() - peak0) / MiB
    if mode.startswith("old"):
        out["in_absent_us"] = per_call_us(ids.__contains__, absent)
        if mode == "old-load":
            out["in_stored_us"] = per_call_us(ids.__contains__, present)
        # above 2 M ids the old code asked SQLite for every chunk
        out["sqlite_has_us"] = per_call_us(lambda c: cache.has(c, BLOB_DATA), absent[:5000])
    else:
        out["maybe_absent_us"] = per_call_us(known.maybe, absent)
        out["in_absent_us"] = per_call_us(known.__contains__, absent)
        if mode == "new-load":
            out["in_stored_us"] = per_call_us(known.__contains__, present)
            batches = [present[i:i + 128] for i in range(0, len(present), 128)]
            out["confirm_stored_us"] = per_call_us(known.confirm, batches) / 128
        else:
            extra = [rng.randbytes(32) for _ in range(SAMPLE)]
            out["add_us"] = per_call_us(known.add, extra)
            out["prefix_bytes_per_id"] = known.prefixes.nbytes() / known.prefixes.count
    return out


def fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2,16", help="store sizes in millions of ids (default 2,16)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n, Path(args.cache))))
        return 0
    print(f"load average before: {load()}", flush=True)
    rows = []
    for millions in (float(s) for s in args.sizes.split(",")):
        n = int(millions * 1_000_000)
        t0 = time.monotonic()
        path = build_cache(n)
        print(f"{n:,} ids: cache ready ({time.monotonic() - t0:.0f} s)", file=sys.stderr,
              flush=True)
        for mode in args.modes.split(","):
            proc = subprocess.run([sys.executable, __file__, "--child", mode, "--n", str(n),
                                   "--cache", str(path)], capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr, file=sys.stderr)
                return 1
            rows.append(json.loads(proc.stdout))
            r = rows[-1]
            print(f"  {mode}: +{r['rss_mib']:.0f} MiB in {r['build_s']:.1f} s", file=sys.stderr,
                  flush=True)
    print()
    print("| ids | variant | + RSS MiB | + peak MiB | build s | prefix test µs | in (absent) µs "
          "| in (stored) µs | confirm µs/id | add µs | SQLite has µs |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['n'] / 1e6:g} M | {r['mode']} | {r['rss_mib']:.1f} | {r['peak_mib']:.1f} "
              f"| {r['build_s']:.1f} | {fmt(r.get('maybe_absent_us'), '.2f')} "
              f"| {fmt(r.get('in_absent_us'), '.2f')} | {fmt(r.get('in_stored_us'), '.2f')} "
              f"| {fmt(r.get('confirm_stored_us'), '.2f')} | {fmt(r.get('add_us'), '.2f')} "
              f"| {fmt(r.get('sqlite_has_us'), '.1f')} |")
    print(f"\nload average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
