#!/usr/bin/env python3
"""Restoring from an S3 store: read-ahead settings side by side, in one process.

Starts the sandbox's S3 (engine.sandbox.s3.S3Server: a real moto server process), backs v1 up
into a store in a bucket once, then restores it to a file with each variant in turn, alternating
for ``--rounds`` rounds, and prints the median wall seconds and this process's CPU seconds (the
client's; moto's are its own process) per variant: the number of GET threads, and the size of
the blocks each GET's body is read in (1 byte = one read call per blob).

    python bench/s3_restore.py [--size 1.2G] [--rounds 3] [--threads 3,6] [--blocks 1,1048576]
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

from engine.sandbox.s3 import S3Server, s3_client  # noqa: E402
from engine.store import prefetch, restorer  # noqa: E402
from engine.store.store import Store  # noqa: E402

PASSPHRASE = "bench-passphrase-not-secret"


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of another process (moto's), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1.2G")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="3,6")
    ap.add_argument("--blocks", default="1,1048576")
    args = ap.parse_args()
    images = ensure_images(parse_size(args.size), 1, log=lambda m: print(m, file=sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="s3-restore-", dir=BENCH_DIR / "work"))
    os.environ.update(STRONGROOM_KDF_MEMORY_KIB="8192", XDG_CACHE_HOME=str(work / "cache"))
    server = S3Server().start()
    try:
        os.environ.update(STRONGROOM_S3_ENDPOINT=server.moto_endpoint,
                          SCW_ACCESS_KEY=server.access_key, SCW_SECRET_KEY=server.secret_key,
                          AWS_ACCESS_KEY_ID=server.access_key,
                          AWS_SECRET_ACCESS_KEY=server.secret_key,
                          SCW_DEFAULT_REGION="fr-par", AWS_DEFAULT_REGION="fr-par")
        s3_client(server.moto_endpoint, server.access_key, server.secret_key).create_bucket(
            Bucket="bench", CreateBucketConfiguration={"LocationConstraint": "fr-par"})
        url = "s3://bench/store"
        Store.init(url, PASSPHRASE).close()
        want = sha256_file(images.v1)
        with Store.open(url, PASSPHRASE) as store:
            with open(images.v1, "rb") as f:
                snap = store.backup(f, name="v1").snapshot.id
            manifest = store._manifest(snap)
            out = work / "out.img"
            variants = [(int(t), int(b)) for t in args.threads.split(",")
                        for b in args.blocks.split(",")]
            figures: dict[tuple[int, int], list[tuple[float, float, float]]] = {
                v: [] for v in variants}
            moto = server._process.pid
            print(f"load before {load()}", file=sys.stderr)
            for r in range(args.rounds):
                for threads, block in variants:
                    prefetch.THREADS_STREAM, prefetch.STREAM_BLOCK = threads, block
                    out.unlink(missing_ok=True)
                    t, c, m = time.monotonic(), cpu(), process_cpu(moto)
                    restorer.restore_to_path(store._reader(), manifest, out, None, None)
                    figures[(threads, block)].append((time.monotonic() - t, cpu() - c,
                                                      process_cpu(moto) - m))
                    if r == 0 and sha256_file(out) != want:
                        raise SystemExit("restored bytes differ")
        size = images.v1.stat().st_size
        print(f"v1 {size / 2**20:.0f} MiB from S3 (moto), {args.rounds} rounds, median; "
              f"load after {load()}\n")
        print(f"{'threads':>7} {'block':>8} {'wall s':>7} {'client CPU s':>12} "
              f"{'moto CPU s':>10} {'MB/s':>6}")
        for (threads, block), runs in figures.items():
            wall = statistics.median(w for w, _, _ in runs)
            c = statistics.median(c for _, c, _ in runs)
            m = statistics.median(m for _, _, m in runs)
            print(f"{threads:>7} {block:>8} {wall:>7.2f} {c:>12.2f} {m:>10.2f} "
                  f"{size / 1e6 / wall:>6.0f}")
    finally:
        server.proxy and server.proxy.stop()
        server._kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
