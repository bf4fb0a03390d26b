#!/usr/bin/env python3
"""What does a fresh output buffer per chunk cost? AES-GCM and zstd, allocating vs reusing.

Fresh memory is slow on these VMs (first touch ~2 GB/s), and the store's per-chunk calls each
return a new bytes object. This times, per GiB of 64 KiB chunks and in thread CPU seconds (so
other load does not distort the comparison much): AESGCM.encrypt vs encrypt_into, decrypt vs
decrypt_into (cryptography >= 43), zstd decompress vs stream_reader().readinto into a reused
buffer, and zstd compress (level 1) for scale. Measured here: reusing buffers saves little
(AES-GCM 0.40 → 0.35 CPU s/GiB; zstd decompress none) as long as each result is freed before
the next call — a first try that kept all results alive looked 3x worse: that was first-touch
memory, not the allocation.

    python bench/alloc_costs.py [--chunk-kib 64]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from make_images import gen_log
from measure import load

GiB = 1 << 30


def cpu_per_gib(fn: Callable[[], object], chunk: int) -> float:
    n = GiB // chunk
    start = time.thread_time()
    for _ in range(n):
        fn()
    return time.thread_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description="Per-chunk allocation vs reused buffers: CPU s per GiB.")
    ap.add_argument("--chunk-kib", type=int, default=64)
    args = ap.parse_args()
    size = args.chunk_kib * 1024
    text = "".join(gen_log(random.Random(1), size + 4096)).encode()[:size]
    aead, nonce, ad = AESGCM(AESGCM.generate_key(256)), os.urandom(12), b"\x00" + bytes(32)
    sealed = aead.encrypt(nonce, text, ad)
    sealed_out, plain_out = bytearray(size + 16), bytearray(size)
    cctx = zstandard.ZstdCompressor(level=1)
    packed = cctx.compress(text)
    dctx = zstandard.ZstdDecompressor()

    def decompress_into() -> None:
        with dctx.stream_reader(packed) as reader:
            reader.readinto(plain_out)

    cases = (
        ("AES-GCM encrypt (new bytes)", lambda: aead.encrypt(nonce, text, ad)),
        ("AES-GCM encrypt_into (reused)", lambda: aead.encrypt_into(nonce, text, ad, sealed_out)),
        ("AES-GCM decrypt (new bytes)", lambda: aead.decrypt(nonce, sealed, ad)),
        ("AES-GCM decrypt_into (reused)", lambda: aead.decrypt_into(nonce, sealed, ad, plain_out)),
        ("zstd decompress (new bytes)", lambda: dctx.decompress(packed, max_output_size=size)),
        ("zstd stream_reader.readinto (reused)", decompress_into),
        ("zstd compress level 1 (for scale)", lambda: cctx.compress(text)),
    )
    print(f"{args.chunk_kib} KiB chunks of log text (zstd ratio {len(text) / len(packed):.1f}); "
          f"load average {load()}\n")
    print(f"{'operation':<40} {'CPU s per GiB':>13}")
    for name, fn in cases:
        print(f"{name:<40} {cpu_per_gib(fn, size):>13.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
