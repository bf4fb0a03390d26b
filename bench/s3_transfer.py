"""How fast a backup moves data out of the staging bucket, against a plain boto3 download.

Starts a sandbox (its real moto S3 server process), puts one large object in the fr-par staging
bucket, then measures on the same machine:
  1. plain boto3 downloads into a file: ``download_file`` (boto3's own managed transfer, parallel
     ranged GETs) and one streamed ``get_object`` written to a file; the faster of the two is
     the baseline. One streamed GET into /dev/null (no file) is timed too, as the bound of the
     network alone;
  2. our ranged-GET reader alone, to /dev/null;
  3. our reader feeding a real store (``store.backup``: chunk, hash, dedup, compress, encrypt,
     pack) — what ``strongroom backup`` does after the export;
  4. the same with one streamed GET (the flow's ``concurrency=1``).
moto answers each ranged GET by reading the whole object, so on the sandbox many ranged GETs of a
big object are slow for boto3's ``download_fileobj`` and for our reader alike; real Object
Storage serves ranges at full speed.
Prints MB/s of each, the ratio of the faster backup (3 or 4, the flow picks one per endpoint) to
the baseline (target >= 80%), and the same against the /dev/null read.

    /work/venv/bin/python bench/s3_transfer.py [--size-mib 1024] [--concurrency 8]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.sandbox import Sandbox  # noqa: E402
from engine.scaleway.api import Apis  # noqa: E402
from engine.scaleway.config import scw_client  # noqa: E402
from engine.scaleway.s3stream import RangedReader, StreamReader  # noqa: E402

MiB = 1024 * 1024


def make_image(path: Path, size: int, seed: int = 1) -> None:
    """A disk-like mix: 60% incompressible, 20% text-like, 20% zeros, in 1 MiB runs."""
    rng = random.Random(seed)
    text = (b"2026-11-24T01:00:00Z INFO request served path=/api/v1/items status=200 ms=12\n"
            * (MiB // 80 + 1))[:MiB]
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(MiB, left)
            roll = rng.random()
            if roll < 0.6:
                f.write(os.urandom(n))
            elif roll < 0.8:
                f.write(text[:n])
            else:
                f.seek(n, os.SEEK_CUR)
            left -= n
        f.truncate(size)


def timed(label: str, size: int, fn) -> float:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    rate = size / seconds / 1e6
    print(f"{label:44s} {seconds:7.2f} s  {rate:8.1f} MB/s", flush=True)
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--part-mib", type=int, default=8)
    parser.add_argument("--via-proxy", action="store_true",
                        help="go through the sandbox's fault proxy (a slow asyncio TCP relay) "
                             "instead of straight to its moto server")
    args = parser.parse_args()
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="s3bench-") as tmp, \
            Sandbox(Path(tmp) / "sandbox", profile="small") as sb:
        os.environ.update(sb.env)
        if not args.via_proxy:
            os.environ["STRONGROOM_S3_ENDPOINT"] = \
                f"http://127.0.0.1:{sb.world.storage.server.moto_port}"
        apis = Apis(scw_client(), s3_concurrency=max(args.concurrency, 10))
        s3 = apis.s3("fr-par")
        bucket, key = sb.buckets["fr-par"], "strongroom-tmp/bench/image.qcow2"
        image = Path(tmp) / "image.bin"
        make_image(image, size)
        print(f"object: {args.size_mib} MiB in s3://{bucket} (S3 endpoint "
              f"{os.environ['STRONGROOM_S3_ENDPOINT']}, "
              f"{'fault proxy' if args.via_proxy else 'moto directly'}); "
              f"{os.cpu_count()} CPUs", flush=True)
        s3.upload_file(str(image), bucket, key)

        downloaded = Path(tmp) / "downloaded.qcow2"

        def plain() -> None:
            s3.download_file(bucket, key, str(downloaded))  # boto3's own managed download
            downloaded.unlink()

        def get_to_file() -> None:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            with open(downloaded, "wb") as out:
                for piece in body.iter_chunks(8 * MiB):
                    out.write(piece)
            downloaded.unlink()

        def single_get() -> None:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            for _ in body.iter_chunks(4 * MiB):
                pass

        def reader_only() -> None:
            reader = RangedReader(s3, bucket, key, size, part_size=args.part_mib * MiB,
                                  concurrency=args.concurrency)
            buf = bytearray(4 * MiB)
            with reader:
                while reader.readinto(buf):
                    pass

        from engine.store import Store

        store = Store.init(str(Path(tmp) / "store"), "bench passphrase")

        def backup_streamed() -> None:
            with StreamReader(s3, bucket, key, size) as reader:
                store.backup(reader, name="bench-stream", size_hint=size,
                             source_info={"bench": True})

        def backup() -> None:
            reader = RangedReader(s3, bucket, key, size, part_size=args.part_mib * MiB,
                                  concurrency=args.concurrency)
            with reader:
                store.backup(reader, name="bench", size_hint=size,
                             source_info={"bench": True})

        def backup_local() -> None:
            with open(image, "rb") as f:
                store.backup(f, name="bench-local", size_hint=size)

        # The store's own speed on this machine now (a local file, no network): the ceiling.
        local = timed("local file -> store.backup (ceiling)", size, backup_local)
        store.close()
        image.unlink()
        store = Store.init(str(Path(tmp) / "store1"), "bench passphrase")
        single_get()  # warm up the connections and moto's own caches
        # A download lands in a file; the faster of boto3's two ways is the baseline. Reading
        # into /dev/null (no file at all) is printed too: the bound of the network alone.
        base = max(timed("plain boto3 download_file -> file", size, plain),
                   timed("plain boto3 get_object streamed -> file", size, get_to_file))
        wire = timed("boto3 get_object streamed -> /dev/null", size, single_get)
        ours = timed(f"ranged reader x{args.concurrency} -> /dev/null", size, reader_only)
        full = timed(f"ranged reader x{args.concurrency} -> store.backup", size, backup)
        # A fresh store, or the second backup would be all duplicates and cost nothing.
        store.close()
        store = Store.init(str(Path(tmp) / "store2"), "bench passphrase")
        streamed = timed("streamed GET (concurrency 1) -> store.backup", size, backup_streamed)
        store.close()
        flow = max(full, streamed)  # the flow picks one of the two per endpoint
        print(f"ranged reader / best download:    {ours / base:6.1%}")
        print(f"ranged backup / best download:    {full / base:6.1%}")
        print(f"streamed backup / best download:  {streamed / base:6.1%}")
        print(f"best backup / best download:      {flow / base:6.1%}   (target >= 80%: "
              f"{'MET' if flow >= 0.8 * base else 'MISSED'})")
        print(f"best backup / GET -> /dev/null:   {flow / wire:6.1%}   (no file written: "
              "the network alone)")
        print(f"ranged backup / local backup:  {full / local:6.1%}")
        print(f"streamed backup / local backup:{streamed / local:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
