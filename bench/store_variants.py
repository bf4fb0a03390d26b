#!/usr/bin/env python3
"""What would a small change to the store buy? Backup/restore of v1 with in-process variants.

Runs the real CLI in a fresh process per step, through a tiny wrapper that applies a variant
before `cli.main.main()`: the cyclic GC off, another zstd level (patches
`engine.store.archiver.ZSTD_LEVEL`). Prints wall time, CPU seconds (user+sys, load-independent),
peak RSS and stored bytes per variant, so a proposed fix can be judged by numbers before anyone
edits engine/store. The read-back digest of restore is timed on its own (preadv + BLAKE3 over the
restored file), as that is what dropping it would save.

    python bench/store_variants.py [--size 1.2G] [--levels 1,-1,-3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time

import blake3

from make_images import ensure_images, parse_size
from measure import BENCH_DIR, MiB, load, mib, repo_root, run_measured

PASSPHRASE = "bench-passphrase-not-secret"
WRAPPER = """
import gc, sys
variant = {variant!r}
if variant.get("gc_off"):
    gc.disable()
if "zstd_level" in variant:
    import engine.store.archiver as b
    b.ZSTD_LEVEL = variant["zstd_level"]
from cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def digest_cost(path: str) -> tuple[float, float]:
    """(wall, CPU) seconds of reading a file back through one buffer and hashing it."""
    t0, c0 = time.monotonic(), time.process_time()
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    buf = bytearray(8 * MiB)
    view, pos = memoryview(buf), 0
    fd = os.open(path, os.O_RDONLY)
    try:
        while n := os.preadv(fd, [view], pos):
            hasher.update(view[:n])
            pos += n
    finally:
        os.close(fd)
    return time.monotonic() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description="Store variants: GC off, zstd levels; CPU and bytes.")
    ap.add_argument("--size", default="1.2G")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--levels", default="1,-1,-3", help="zstd levels to try for backup")
    args = ap.parse_args()
    images = ensure_images(parse_size(args.size), args.seed,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    root = repo_root()
    run_dir = BENCH_DIR / "work" / "variants" / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    home = run_dir / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), XDG_DATA_HOME=str(home / ".local/share"),
               XDG_CONFIG_HOME=str(home / ".config"), STRONGROOM_PASSPHRASE=PASSPHRASE,
               STRONGROOM_NO_DAEMON="1")  # profile the process doing the work
    logs = run_dir / "logs"
    variants: list[tuple[str, dict]] = [("baseline", {}), ("gc off", {"gc_off": True})]
    variants += [(f"zstd level {lv}", {"zstd_level": lv}) for lv in
                 (int(x) for x in args.levels.split(",")) if lv != 1]
    rows = []
    load_before = load()
    for i, (name, variant) in enumerate(variants):
        store = run_dir / f"store-{i}"

        def cli(*a: str, _store=store, _variant=variant) -> list[str]:
            return [sys.executable, "-c", WRAPPER.format(variant=_variant), "--store", str(_store), *a]

        print(f"{name}: backup", file=sys.stderr, flush=True)
        run_measured(cli("init"), env=env, cwd=root, log_dir=logs, label=f"init-{i}").check()
        b = run_measured(cli("--json", "backup-image", str(images.v1)), env=env, cwd=root,
                         log_dir=logs, label=f"backup-{i}").check()
        row = {"variant": name, "backup_s": round(b.seconds, 2), "backup_cpu_s": round(b.cpu_seconds, 2),
               "backup_rss": b.max_rss, "stored_bytes": json.loads(b.stdout)["stored_bytes"]}
        if "zstd_level" not in variant:
            print(f"{name}: restore", file=sys.stderr, flush=True)
            out = run_dir / f"restored-{i}.img"
            r = run_measured(cli("restore-image", "latest", str(out)), env=env, cwd=root,
                             log_dir=logs, label=f"restore-{i}").check()
            row.update(restore_s=round(r.seconds, 2), restore_cpu_s=round(r.cpu_seconds, 2),
                       restore_rss=r.max_rss)
            if i == 0:
                wall, cpu = digest_cost(str(out))
                row.update(readback_digest_s=round(wall, 2), readback_digest_cpu_s=round(cpu, 2))
            out.unlink()
        rows.append(row)
        shutil.rmtree(store)

    print(f"v1 {mib(images.v1.stat().st_size)} MiB; load average before {load_before}, after {load()}\n")
    print(f"{'variant':<14} {'backup s':>8} {'CPU s':>6} {'stored MiB':>10} {'RSS MiB':>8}   "
          f"{'restore s':>9} {'CPU s':>6} {'RSS MiB':>8}")
    for r in rows:
        rest = (f"{r['restore_s']:>9} {r['restore_cpu_s']:>6} {mib(r['restore_rss']):>8}"
                if "restore_s" in r else "")
        print(f"{r['variant']:<14} {r['backup_s']:>8} {r['backup_cpu_s']:>6} {mib(r['stored_bytes']):>10} "
              f"{mib(r['backup_rss']):>8}   {rest}")
    if "readback_digest_s" in rows[0]:
        print(f"\nrestore's read-back digest alone (preadv + BLAKE3 of the restored image): "
              f"{rows[0]['readback_digest_s']} s wall, {rows[0]['readback_digest_cpu_s']} CPU s")
    out_json = BENCH_DIR / "results" / f"store_variants-{run_dir.name}.json"
    out_json.parent.mkdir(exist_ok=True)
    out_json.write_text(json.dumps({"load_before": load_before, "load_after": load(), "rows": rows},
                                   indent=2) + "\n")
    print(f"\nJSON: {out_json}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
