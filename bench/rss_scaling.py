#!/usr/bin/env python3
"""Does Strongroom's memory stay flat as the image grows? Peak RSS of backup and restore.

Builds synthetic raw disk images (default 1 GiB and 4 GiB; cached in bench/work/rss/): per 4 MiB
segment, 20% holes (all zeros), 40% incompressible random bytes, 40% half-entropy bytes that zstd
compresses about 2:1 — all unique, so nothing dedups away and the whole pipeline works. Then, for
each size, in a fresh store: `backup-image` and `restore-image` as fresh processes, peak RSS from
wait4, and a hash check of the restored image. Target: <= 300 MiB at 4 GiB, flat with size.
``--store s3`` puts each store in a bucket of the sandbox's S3 (a moto server process, as
compare.py does): the paths that hold packs in flight to Object Storage and stream them back.

    python bench/rss_scaling.py [--sizes 1,4] [--store local|s3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import sys
from pathlib import Path

from make_images import stream_bytes
from measure import BENCH_DIR, MiB, load, mib, repo_root, run_measured, sha256_file, warm

GiB = 1 << 30
SEGMENT = 4 * MiB
TARGET_RSS = 300 * MiB
PASSPHRASE = "bench-passphrase-not-secret"
# maps every byte to one of 16 values: half the entropy, so zstd finds something to do
HALF_ENTROPY = bytes(b & 0x0F | 0x40 for b in range(256))


def synthetic_image(size: int, seed: int = 7) -> Path:
    path = BENCH_DIR / "work" / "rss" / f"synthetic-{size}-seed{seed}.img"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    rng = random.Random(seed)
    with open(tmp, "wb") as f:
        f.truncate(size)
        for off in range(0, size, SEGMENT):
            kind = rng.random()
            n = min(SEGMENT, size - off)
            if kind < 0.2:
                continue  # a hole: reads as zeros
            data = stream_bytes(f"rss:{seed}:{off}", n)
            if kind >= 0.6:
                data = data.translate(HALF_ENTROPY)
            f.seek(off)
            f.write(data)
    tmp.rename(path)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description="Peak RSS of strongroom backup/restore vs image size.")
    ap.add_argument("--sizes", default="1,4", help="image sizes in GiB (default 1,4)")
    ap.add_argument("--keep", action="store_true", help="keep stores and restored images")
    ap.add_argument("--store", choices=("local", "s3"), default="local")
    args = ap.parse_args()
    s3 = None
    if args.store == "s3":
        from compare import S3Repos

        s3 = S3Repos()
    root = repo_root()
    run_dir = BENCH_DIR / "work" / "rss" / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    home = run_dir / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), XDG_DATA_HOME=str(home / ".local/share"),
               XDG_CONFIG_HOME=str(home / ".config"), STRONGROOM_PASSPHRASE=PASSPHRASE,
               STRONGROOM_NO_DAEMON="1")  # measure the process doing the work, not a client
    if s3 is not None:
        env.update(s3.env())
    load_before = load()
    rows = []
    for gib in (float(s) for s in args.sizes.split(",")):
        size = int(gib * GiB)
        print(f"{gib:g} GiB: building/reusing the synthetic image", file=sys.stderr, flush=True)
        image = synthetic_image(size)
        digest = sha256_file(image)
        store = (f"s3://{S3Repos.BUCKET}/{run_dir.name}-{gib:g}G" if s3 is not None
                 else run_dir / f"store-{gib:g}G")
        logs = run_dir / "logs"

        def cli(*a: str) -> list[str]:
            return [sys.executable, "-m", "cli", "--store", str(store), *a]

        run_measured(cli("init"), env=env, cwd=root, log_dir=logs, label=f"init-{gib:g}").check()
        warm(image)
        print(f"{gib:g} GiB: backup", file=sys.stderr, flush=True)
        backup = run_measured(cli("--json", "backup-image", str(image)), env=env, cwd=root,
                              log_dir=logs, label=f"backup-{gib:g}").check()
        snap = json.loads(backup.stdout)["snapshot"]
        out = run_dir / f"restored-{gib:g}G.img"
        print(f"{gib:g} GiB: restore", file=sys.stderr, flush=True)
        restore = run_measured(cli("restore-image", snap, str(out)), env=env, cwd=root,
                               log_dir=logs, label=f"restore-{gib:g}").check()
        ok = out.stat().st_size == size and sha256_file(out) == digest
        rows.append({"gib": gib, "backup_rss": backup.max_rss, "backup_s": round(backup.seconds, 2),
                     "backup_cpu_s": round(backup.cpu_seconds, 2),
                     "backup_mb_s": round(size / 1e6 / backup.seconds, 1),
                     "restore_rss": restore.max_rss, "restore_s": round(restore.seconds, 2),
                     "restore_cpu_s": round(restore.cpu_seconds, 2),
                     "restore_mb_s": round(size / 1e6 / restore.seconds, 1), "verified": ok})
        if not args.keep:
            if s3 is None:
                shutil.rmtree(store)
            out.unlink()
    if s3 is not None:
        s3.stop()

    print(f"store: {args.store}; load average before {load_before}, after {load()}; "
          f"{os.cpu_count()} CPUs\n")
    print(f"{'image':>7}  {'backup RSS MiB':>14}  {'backup s':>8}  {'MB/s':>6}  "
          f"{'restore RSS MiB':>15}  {'restore s':>9}  {'MB/s':>6}  restored ok")
    for r in rows:
        print(f"{r['gib']:>5g} G  {mib(r['backup_rss']):>14}  {r['backup_s']:>8}  {r['backup_mb_s']:>6}  "
              f"{mib(r['restore_rss']):>15}  {r['restore_s']:>9}  {r['restore_mb_s']:>6}  "
              f"{'yes' if r['verified'] else 'NO'}")
    peak = max(max(r["backup_rss"], r["restore_rss"]) for r in rows)
    print(f"\npeak RSS {mib(peak)} MiB (target <= {TARGET_RSS // MiB} MiB): "
          f"{'MET' if peak <= TARGET_RSS else 'MISSED'}")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"growth {first['gib']:g} G → {last['gib']:g} G: backup x{last['backup_rss'] / first['backup_rss']:.2f}, "
              f"restore x{last['restore_rss'] / first['restore_rss']:.2f} (flat = about x1)")
    out_json = BENCH_DIR / "results" / f"rss_scaling-{run_dir.name}.json"
    out_json.parent.mkdir(exist_ok=True)
    out_json.write_text(json.dumps({"store": args.store, "load_before": load_before, "load_after": load(), "rows": rows},
                                   indent=2) + "\n")
    print(f"\nJSON: {out_json}")
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0 if all(r["verified"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
