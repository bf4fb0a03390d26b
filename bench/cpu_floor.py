#!/usr/bin/env python3
"""The best any pipeline built from the store's primitives could do on this machine.

Runs every primitive a backup and a restore must apply to the bench's v1 image, one after the
other on one thread, and sums their CPU seconds (thread CPU time, so other load distorts it
little): reading the image, FastCDC, keyed BLAKE3 chunk ids, zstd level
1 of each new non-zero chunk (skipped when it does not compress, as the store does), AES-256-GCM;
and for a restore AES-GCM decryption, zstd decompression and the chunk-id check. (Since manifest
version 2 the snapshot digest is over the chunk list, not the image: no whole-image BLAKE3 pass
on either side, see docs/FORMAT.md §9.) Adds the fixed cost of a command (interpreter start, imports, Argon2id of the key file)
and divides the rest by the number of cores: a throughput no real pipeline can beat, since it
assumes every core busy all the time with no hand-off cost. Then compares that bound, and the
newest `compare.py` run, with restic's figures from the same JSON.

    /work/venv/bin/python bench/cpu_floor.py [--size 1.2G] [--cores N] [--bound]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import blake3
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyfastcdc import FastCDC

from make_images import ensure_images, parse_size
from measure import BENCH_DIR, load, repo_root

READ = 8 << 20


class Clock:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, name: str, since: float) -> float:
        now = time.thread_time()
        self.totals[name] = self.totals.get(name, 0.0) + now - since
        return now


@dataclass
class Sealed:
    """What the backup half stored, for the restore half to open again."""

    key: bytes
    nonce: bytes
    blobs: list[tuple[bytes, bytes, bool]]  # (chunk id, ciphertext, compressed?)


def backup_costs(image: Path, clock: Clock) -> Sealed:
    key, nonce = os.urandom(32), os.urandom(12)
    aead, cctx = AESGCM(key), zstandard.ZstdCompressor(level=1)
    cdc = FastCDC(65536, min_size=16384, max_size=262144, seed=12345)
    zeros, seen, out = bytes(262144), set(), Sealed(key, nonce, [])
    buf = bytearray(READ)
    with open(image, "rb", buffering=0) as f:
        while True:
            t = time.thread_time()
            n = f.readinto(buf)
            t = clock.add("read the image", t)
            if not n:
                break
            view = memoryview(buf)[:n]
            spans = [(c.offset, c.length) for c in cdc.cut_buf(view)]
            clock.add("FastCDC", t)
            new: list[tuple[bytes, memoryview]] = []
            t = time.thread_time()
            for off, length in spans:
                chunk = view[off:off + length]
                if chunk[0] == 0 and zeros.startswith(chunk):
                    continue
                cid = blake3.blake3(chunk, key=key).digest()
                if cid not in seen:
                    seen.add(cid)
                    new.append((cid, chunk))
            t = clock.add("chunk ids (keyed BLAKE3)", t)
            if not new:
                continue
            # as the store's workers do: one call for the buffer's new chunks
            frames = cctx.multi_compress_to_buffer([chunk for _, chunk in new], threads=0)
            t = clock.add("zstd level 1", t)
            for (cid, chunk), frame in zip(new, frames):
                length = len(chunk)
                small = len(frame) < length - (length >> 5)
                out.blobs.append((cid, aead.encrypt(nonce, frame if small else chunk, cid),
                                  small))
            clock.add("AES-256-GCM", t)
    return out


def restore_costs(sealed: Sealed, clock: Clock) -> None:
    aead, dctx = AESGCM(sealed.key), zstandard.ZstdDecompressor()
    for cid, ct, small in sealed.blobs:
        t = time.thread_time()
        payload = aead.decrypt(sealed.nonce, ct, cid)
        t = clock.add("AES-256-GCM decrypt", t)
        plain = dctx.decompress(payload) if small else payload
        t = clock.add("zstd decompress", t)
        if blake3.blake3(plain, key=sealed.key).digest() != cid:
            raise SystemExit("bench: a chunk does not match its id")
        clock.add("chunk-id check", t)


def command_overhead() -> float:
    """Wall seconds of a store command that does nothing else: imports + Argon2id."""
    root = repo_root()
    # Store, not the package: engine.store's names import lazily (so that Argon2id can start
    # first), and a backup needs the store's modules
    code = ("import cli.main\nfrom engine.store import Store\n"
            "from engine.store.crypto import _kek, KDF_ITERATIONS, KDF_MEMORY_KIB, KDF_LANES\n"
            "_kek('x', b'0' * 16, KDF_ITERATIONS, KDF_MEMORY_KIB, KDF_LANES)\n")
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def backup_bound(size: str, cores: int) -> float:
    """The two-core bound for backing up the bench's v1 image of ``size``, in MB/s (what
    ``main`` prints), measured now in a child process (this one's memory would count in the
    next child's peak RSS): compare.py calls it in the same run as the backups it judges,
    since the primitives' speed and the command's start both move with the machine's load."""
    out = subprocess.run([sys.executable, __file__, "--size", size, "--cores", str(cores),
                          "--bound"], check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def newest_compare() -> dict | None:
    for path in sorted((BENCH_DIR / "results").glob("compare-*.json"), reverse=True):
        doc = json.loads(path.read_text())
        if doc.get("store", "local") == "local" and "restic" in doc.get("results", {}) \
                and "strongroom" in doc["results"]:  # local stores: an S3 run adds moto's work
            doc["_path"] = str(path)
            return doc
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1.2G")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--bound", action="store_true",
                    help="print only the backup bound in MB/s (compare.py's same-run figure)")
    args = ap.parse_args()
    images = ensure_images(parse_size(args.size))
    size = images.v1.stat().st_size
    if args.bound:
        clock = Clock()
        backup_costs(images.v1, clock)
        wall = command_overhead() + sum(clock.totals.values()) / args.cores
        print(f"backup bound MB/s {size / wall / 1e6:.1f}")
        return 0
    print(f"v1 image {size / 1e6:.0f} MB; {args.cores} cores; load {load()}", flush=True)
    clock = Clock()
    sealed = backup_costs(images.v1, clock)
    backup = dict(clock.totals)
    restore_clock = Clock()
    restore_costs(sealed, restore_clock)  # zero chunks and duplicates cost a restore nothing
    restore = restore_clock.totals
    overhead = command_overhead()

    def show(title: str, costs: dict[str, float]) -> float:
        total = sum(costs.values())
        print(f"\n{title} (CPU s, one thread)")
        for name, secs in sorted(costs.items(), key=lambda kv: -kv[1]):
            print(f"  {name:28s} {secs:6.2f}  {secs / total:5.1%}")
        wall = overhead + total / args.cores
        print(f"  {'sum':28s} {total:6.2f}")
        print(f"  best possible on {args.cores} cores: {overhead:.2f} s start + "
              f"{total / args.cores:.2f} s = {wall:.2f} s -> {size / wall / 1e6:.0f} MB/s")
        return size / wall / 1e6

    best_backup = show("backup v1", backup)
    best_restore = show("restore v1", restore)
    doc = newest_compare()
    if doc:
        res = doc["results"]
        rb = res["restic"]["steps"]["backup_v1"]["mb_per_s"]
        rr = res["restic"]["steps"]["restore_v1"]["mb_per_s"]
        sb = res["strongroom"]["steps"]["backup_v1"]["mb_per_s"]
        sr = res["strongroom"]["steps"]["restore_v1"]["mb_per_s"]
        print(f"\nnewest compare.py run ({Path(doc['_path']).name}):")
        print(f"  backup:  strongroom {sb:.0f} MB/s = {sb / best_backup:.0%} of the bound above "
              f"(goal >= 90%: {'MET' if sb >= 0.9 * best_backup else 'MISSED'}); restic "
              f"{rb:.0f} MB/s -> {sb / rb:.2f}x, the bound would be {best_backup / rb:.2f}x")
        print(f"  restore: strongroom {sr:.0f} MB/s, restic {rr:.0f} MB/s -> {sr / rr:.2f}x now; "
              f"the bound above would be {best_restore / rr:.2f}x (goal 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
