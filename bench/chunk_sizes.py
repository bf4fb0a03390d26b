#!/usr/bin/env python3
"""Which FastCDC average chunk size should the store use? Measured on the v1 → v2 images.

For each average size (default 16, 32, 64, 128 KiB; min = avg/4, max = avg*4, pyfastcdc's
defaults) this chunks v1 and v2 with pyfastcdc, identifies chunks with BLAKE3, and reports:
v1 chunks and unique bytes (raw and zstd-3 compressed, a chunk kept raw when it does not shrink),
the bytes v2 adds on top of v1 (raw and compressed) — what a backup of v2 would store — and the
single-core chunk+hash throughput. No store needed.

    python bench/chunk_sizes.py [--size 1.2G] [--sizes 16,32,64,128]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import mmap
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import blake3
import zstandard
from pyfastcdc import FastCDC

from make_images import ensure_images, parse_size
from measure import BENCH_DIR, MiB, load, mib

LEVEL = 3
KEY = b"k" * 32  # keyed like the store's chunk ids; the key does not change the outcome


@dataclass
class SizeResult:
    avg_kib: int
    v1_chunks: int
    v1_mean_chunk: int
    v1_unique_raw: int
    v1_unique_zstd: int
    v2_new_chunks: int
    v2_new_raw: int
    v2_new_zstd: int
    chunk_hash_mb_s: float   # single core, v1, chunking + keyed BLAKE3
    zstd_mb_s: float         # single core, compressing the new/unique chunks


def map_file(path: Path) -> tuple[mmap.mmap, memoryview]:
    f = open(path, "rb")
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    f.close()
    mm.madvise(mmap.MADV_SEQUENTIAL)
    return mm, memoryview(mm)


def stored_size(cctx: zstandard.ZstdCompressor, data: memoryview) -> int:
    return min(len(cctx.compress(data)), len(data))


def measure(avg: int, v1: Path, v2: Path) -> SizeResult:
    cdc = FastCDC(avg)
    cctx = zstandard.ZstdCompressor(level=LEVEL)
    seen: set[bytes] = set()
    chunks = unique_raw = unique_zstd = 0
    zstd_seconds = 0.0
    mm, view = map_file(v1)
    t0 = time.thread_time()
    unique: list[tuple[int, int]] = []
    for c in cdc.cut_buf(view):
        chunks += 1
        cid = blake3.blake3(c.data, key=KEY).digest()
        if cid not in seen:
            seen.add(cid)
            unique.append((c.offset, c.length))
    hash_seconds = time.thread_time() - t0
    t0 = time.thread_time()
    for off, length in unique:
        unique_raw += length
        unique_zstd += stored_size(cctx, view[off:off + length])
    zstd_seconds += time.thread_time() - t0
    v1_bytes = len(view)
    del c, view, mm  # unmapped once the last chunk view goes

    new_chunks = new_raw = new_zstd = 0
    mm, view = map_file(v2)
    for c in cdc.cut_buf(view):
        cid = blake3.blake3(c.data, key=KEY).digest()
        if cid not in seen:
            seen.add(cid)
            new_chunks += 1
            new_raw += c.length
            t0 = time.thread_time()
            new_zstd += stored_size(cctx, c.data)
            zstd_seconds += time.thread_time() - t0
    return SizeResult(avg // 1024, chunks, v1_bytes // max(1, chunks), unique_raw, unique_zstd,
                      new_chunks, new_raw, new_zstd, round(v1_bytes / 1e6 / hash_seconds, 1),
                      round((unique_raw + new_raw) / 1e6 / max(zstd_seconds, 1e-9), 1))


@dataclass
class LevelResult:
    level: int
    input_mb: float
    stored_mib: float        # after compression, a chunk kept raw when it does not shrink
    ratio: float
    mb_s: float              # single core, all chunks
    incompressible_share: float  # share of input bytes in chunks that did not shrink by 3%
    incompressible_mb_s: float   # single core, on those chunks alone


def compression_levels(v1: Path, avg: int, levels: list[int]) -> list[LevelResult]:
    """zstd cost and gain per level on v1's chunks: zstd is the pipeline's biggest CPU cost."""
    mm, view = map_file(v1)
    chunks = [(c.offset, c.length) for c in FastCDC(avg).cut_buf(view)]
    out = []
    for level in levels:
        cctx = zstandard.ZstdCompressor(level=level)
        stored = incomp = 0
        seconds = incomp_seconds = 0.0
        for off, length in chunks:
            t0 = time.thread_time()
            n = len(cctx.compress(view[off:off + length]))
            dt_ = time.thread_time() - t0
            seconds += dt_
            if n >= 0.97 * length:
                incomp += length
                incomp_seconds += dt_
            stored += min(n, length)
        total = len(view)
        out.append(LevelResult(level, round(total / 1e6, 1), round(stored / MiB, 1), round(total / stored, 2),
                               round(total / 1e6 / seconds, 1), round(incomp / total, 3),
                               round(incomp / 1e6 / max(incomp_seconds, 1e-9), 1)))
    del view, mm
    return out


def latest_restic_v2(v1: Path) -> int | None:
    """restic's v2 new bytes on the same image, from the newest compare.py result, if any."""
    for path in sorted((BENCH_DIR / "results").glob("compare-*.json"), reverse=True):
        doc = json.loads(path.read_text())
        restic = doc.get("results", {}).get("restic", {})
        if doc.get("images", {}).get("v1") == str(v1) and "backup_v2" in restic.get("steps", {}):
            return restic["steps"]["backup_v2"]["stored_bytes"]
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description="FastCDC average chunk size vs dedup and speed on v1→v2.")
    ap.add_argument("--size", default="1.2G", help="image data size for make_images (default 1.2G)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sizes", default="16,32,64,128", help="average chunk sizes in KiB")
    ap.add_argument("--levels", default="1,3",
                    help="zstd levels to compare on v1 (chunked at --level-avg); empty to skip")
    ap.add_argument("--level-avg", type=int, default=64, help="chunk size in KiB for --levels")
    args = ap.parse_args()
    images = ensure_images(parse_size(args.size), args.seed,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    load_before = load()
    results = []
    for kib in (int(s) for s in args.sizes.split(",")):
        print(f"avg {kib} KiB …", file=sys.stderr, flush=True)
        results.append(measure(kib * 1024, images.v1, images.v2))
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if levels:
        print(f"zstd levels {levels} …", file=sys.stderr, flush=True)
    level_rows = compression_levels(images.v1, args.level_avg * 1024, levels) if levels else []
    restic = latest_restic_v2(images.v1)

    print(f"images: v1 {mib(images.v1.stat().st_size)} MiB, v2 {mib(images.v2.stat().st_size)} MiB; "
          f"zstd level {LEVEL}; load before {load_before}, after {load()}\n")
    header = ("avg KiB", "v1 chunks", "mean KiB", "v1 uniq MiB", "v1 zstd MiB", "v2 new chunks",
              "v2 new MiB", "v2 new zstd MiB", "chunk+hash MB/s", "zstd MB/s")
    rows = [header] + [(r.avg_kib, r.v1_chunks, f"{r.v1_mean_chunk / 1024:.1f}", mib(r.v1_unique_raw),
                        mib(r.v1_unique_zstd), r.v2_new_chunks, mib(r.v2_new_raw), mib(r.v2_new_zstd),
                        r.chunk_hash_mb_s, r.zstd_mb_s) for r in results]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if restic:
        print(f"\nrestic stored {mib(restic)} MiB for the same v2 (newest compare.py result); "
              f"0.7x = {mib(0.7 * restic)} MiB")
        for r in results:
            print(f"  avg {r.avg_kib:>3} KiB: v2 new zstd = {r.v2_new_zstd / restic:.2f}x restic")
    print("\nindex entries per TiB of unique data: " + ", ".join(
        f"{r.avg_kib} KiB → {2**40 / max(1, r.v1_mean_chunk) / 1e6:.0f} M"
        for r in results))

    if level_rows:
        print(f"\nzstd on v1 in {args.level_avg} KiB chunks (single core; a chunk is stored raw when it "
              f"does not shrink):")
        print(f"{'level':>5}  {'stored MiB':>10}  {'ratio':>5}  {'MB/s':>6}  {'incompressible share':>20}  "
              f"{'MB/s on those':>13}")
        for r in level_rows:
            print(f"{r.level:>5}  {r.stored_mib:>10}  {r.ratio:>5}  {r.mb_s:>6}  {r.incompressible_share:>20}  "
                  f"{r.incompressible_mb_s:>13}")
    out = BENCH_DIR / "results" / f"chunk_sizes-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"images": {"v1": str(images.v1), "v2": str(images.v2)},
                               "load_before": load_before, "load_after": load(), "restic_v2": restic,
                               "results": [asdict(r) for r in results],
                               "zstd_levels": [asdict(r) for r in level_rows]}, indent=2) + "\n")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
