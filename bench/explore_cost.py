"""What exploring a backup costs: bytes read from the store to list a directory and to read a
1 MB file inside the backup of a 10 GiB volume (an ext4 holding real files).

    /work/venv/bin/python bench/explore_cost.py [--size-gib 10] [--format qcow2|raw] [--keep DIR]

Builds a sparse raw image with mke2fs -d (a few hundred MB of real files), optionally converts
it to QCOW2 as a Scaleway export is, backs it up into a fresh local store, then opens the
snapshot with store.open_image and reports ``bytes_fetched`` (bytes read from storage) after
each step. The figures must be small next to the image size.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.explore import open_volume  # noqa: E402
from engine.store import Store  # noqa: E402

MiB = 1 << 20


def mib(n: int) -> str:
    return f"{n / MiB:,.2f} MiB"


def build_tree(root: Path, rng: random.Random) -> None:
    small = root / "srv" / "small"
    small.mkdir(parents=True)
    for i in range(2000):                       # a directory worth listing
        (small / f"record-{i:05d}.json").write_text(f'{{"id": {i}, "v": "{rng.random()}"}}\n')
    docs = root / "home" / "ada" / "docs"
    docs.mkdir(parents=True)
    (docs / "one-megabyte.bin").write_bytes(rng.randbytes(MiB))
    data = root / "var" / "lib" / "data"
    data.mkdir(parents=True)
    for i in range(6):                          # bulk the reads must not touch
        (data / f"blob-{i}.bin").write_bytes(rng.randbytes(48 * MiB))
    logs = root / "var" / "log"
    logs.mkdir(parents=True)
    (logs / "syslog").write_text("".join(f"line {i} {rng.random()}\n" for i in range(200_000)))


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=int, default=10)
    parser.add_argument("--format", choices=("qcow2", "raw"), default="qcow2")
    parser.add_argument("--keep", help="work in this folder and keep it")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="explore-cost-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_CACHE_HOME", str(work / "cache"))
    try:
        rng = random.Random(7)
        tree = work / "tree"
        shutil.rmtree(tree, ignore_errors=True)
        build_tree(tree, rng)
        raw = work / "volume.img"
        raw.unlink(missing_ok=True)
        t0 = time.monotonic()
        run("mke2fs", "-q", "-t", "ext4", "-d", str(tree), "-F", str(raw), f"{args.size_gib}G")
        image = raw
        if args.format == "qcow2":
            image = work / "volume.qcow2"
            run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image))
        print(f"image: {args.format}, virtual {args.size_gib} GiB, file {mib(image.stat().st_size)}"
              f" on disk (built in {time.monotonic() - t0:.1f} s)")

        store_dir = work / "store"
        shutil.rmtree(store_dir, ignore_errors=True)
        passphrase = "bench passphrase"
        Store.init(str(store_dir), passphrase).close()
        with Store.open(str(store_dir), passphrase) as store:
            t0 = time.monotonic()
            with open(image, "rb") as src:
                result = store.backup(src, name="explore-cost")
            print(f"backup: {mib(result.bytes)} in, {mib(result.stored_bytes)} stored, "
                  f"{time.monotonic() - t0:.1f} s")
            ref = result.snapshot.id

            steps: list[tuple[str, int, float]] = []
            reader = store.open_image(ref)
            t0 = time.monotonic()
            explorer = open_volume(reader)
            steps.append(("open image + find filesystem", reader.bytes_fetched,
                          time.monotonic() - t0))
            before, t0 = reader.bytes_fetched, time.monotonic()
            listing = explorer.listdir("/srv/small")
            steps.append((f"list /srv/small ({len(listing)} entries)",
                          reader.bytes_fetched - before, time.monotonic() - t0))
            before, t0 = reader.bytes_fetched, time.monotonic()
            data = explorer.read_file("/home/ada/docs/one-megabyte.bin")
            steps.append((f"read a {len(data) / MiB:.0f} MB file", reader.bytes_fetched - before,
                          time.monotonic() - t0))
            expected = (tree / "home/ada/docs/one-megabyte.bin").read_bytes()
            assert hashlib.sha256(data).digest() == hashlib.sha256(expected).digest()
            before, t0 = reader.bytes_fetched, time.monotonic()
            explorer.listdir("/var/log")
            steps.append(("list /var/log (cold)", reader.bytes_fetched - before,
                          time.monotonic() - t0))
            reader.close()

        image_bytes = args.size_gib << 30
        print(f"\nbytes read from the store (store.open_image(...).bytes_fetched), "
              f"image {args.size_gib} GiB = {image_bytes:,} B:")
        for label, fetched, secs in steps:
            print(f"  {label:<34} {mib(fetched):>12}  {fetched / image_bytes:9.5%} of image  "
                  f"{secs * 1000:7.0f} ms")
        total = sum(s[1] for s in steps)
        print(f"  {'total':<34} {mib(total):>12}  {total / image_bytes:9.5%} of image")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
