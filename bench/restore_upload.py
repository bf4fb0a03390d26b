"""How fast a restore moves an image out of the store into the staging bucket, against a plain
boto3 ``upload_file`` of the same image to the same bucket.

Starts a sandbox (its real moto S3 server process), backs one image up into a local store, then
measures on the same machine, each step in turn (and ``--repeat`` times, best of each kept):
  1. plain boto3 ``upload_file`` of the image file (boto3's managed transfer: multipart, 10
     threads, 8 MiB parts) to the fr-par staging bucket: the baseline;
  2. the restore flow's upload: ``store.restore`` of the snapshot into the flow's
     ``MultipartWriter`` (engine/scaleway/s3stream.py) with the flow's concurrency, to the same
     bucket: what ``strongroom restore`` does before the import;
  3. ``store.restore`` into nothing (no network): the store's own ceiling now.
Prints the seconds and MB/s of each and the ratio of 2 to 1 (target >= 80%). With ``--rss``,
step 2 also runs once in a fresh process, whose peak RSS (from wait4) is printed: what the
restore flow's upload holds in memory for an image of this size (target <= 300 MiB at 4 GiB).

    /work/venv/bin/python bench/restore_upload.py [--size-mib 512] [--concurrency 4]
                                                  [--repeat 2] [--via-proxy] [--rss]
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.s3_transfer import make_image  # noqa: E402
from engine.sandbox import Sandbox  # noqa: E402
from engine.scaleway.api import Apis  # noqa: E402
from engine.scaleway.config import scw_client  # noqa: E402
from engine.scaleway.s3stream import MultipartWriter  # noqa: E402

MiB = 1024 * 1024


class Nowhere(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        return len(memoryview(b))  # type: ignore[arg-type]


def timed(label: str, size: int, fn) -> float:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    print(f"{label:52s} {seconds:7.2f} s  {size / seconds / 1e6:8.1f} MB/s", flush=True)
    return seconds


FLOW_CHILD = """
import sys
from engine.scaleway.api import Apis
from engine.scaleway.config import scw_client
from engine.scaleway.s3stream import MultipartWriter
from engine.store import Store
store_path, snap, bucket, size, concurrency = sys.argv[1:]
s3 = Apis(scw_client(), s3_concurrency=16).s3("fr-par")
writer = MultipartWriter(s3, bucket, "strongroom-tmp/bench/flow-rss.qcow2", int(size),
                         concurrency=int(concurrency))
with Store.open(store_path, "bench passphrase") as store:
    try:
        store.restore(snap, writer)
        writer.commit()
    finally:
        writer.close()
"""


def flow_rss(store_path: str, snap: str, bucket: str, size: int, concurrency: int) -> int:
    """Peak RSS in bytes of the flow's upload run alone in a fresh interpreter."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", FLOW_CHILD, store_path, snap, bucket,
                             str(size), str(concurrency)],
                            cwd=Path(__file__).resolve().parent.parent, env=os.environ)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("the flow's child failed")
    return usage.ru_maxrss * 1024


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=4,
                        help="parts in flight (the restore flow's default: 4)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--rss", action="store_true",
                        help="also run the flow once in a fresh process and print its peak RSS")
    parser.add_argument("--via-proxy", action="store_true",
                        help="go through the sandbox's fault proxy (a slow asyncio TCP relay) "
                             "instead of straight to its moto server")
    args = parser.parse_args()
    size = args.size_mib * MiB
    print(f"load average before: {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="restore-upload-") as tmp, \
            Sandbox(Path(tmp) / "sandbox", profile="small") as sb:
        os.environ.update(sb.env)
        if not args.via_proxy:
            os.environ["STRONGROOM_S3_ENDPOINT"] = \
                f"http://127.0.0.1:{sb.world.storage.server.moto_port}"
        s3 = Apis(scw_client(), s3_concurrency=16).s3("fr-par")
        bucket = sb.buckets["fr-par"]
        image = Path(tmp) / "image.bin"
        make_image(image, size)
        from engine.store import Store

        store = Store.init(str(Path(tmp) / "store"), "bench passphrase")
        with open(image, "rb") as f:
            snap = store.backup(f, name="bench", size_hint=size).snapshot
        print(f"image: {args.size_mib} MiB, snapshot {snap.id[:12]}; S3 endpoint "
              f"{os.environ['STRONGROOM_S3_ENDPOINT']} "
              f"({'fault proxy' if args.via_proxy else 'moto directly'}); "
              f"{os.cpu_count()} CPUs", flush=True)

        def plain() -> None:
            s3.upload_file(str(image), bucket, "strongroom-tmp/bench/plain.qcow2")

        def flow() -> None:
            writer = MultipartWriter(s3, bucket, "strongroom-tmp/bench/flow.qcow2", size,
                                     concurrency=args.concurrency)
            try:
                store.restore(snap.id, writer)
                writer.commit()
            finally:
                writer.close()

        def ceiling() -> None:
            store.restore(snap.id, Nowhere())

        plain()  # warm up connections, moto and the page cache
        if args.rss:
            store_path = str(Path(tmp) / "store")
            peak = flow_rss(store_path, snap.id, bucket, size, args.concurrency)
            print(f"{'the flow in a fresh process: peak RSS':52s} {peak / MiB:7.0f} MiB  "
                  f"(target <= 300 MiB: {'MET' if peak <= 300 * MiB else 'MISSED'})", flush=True)
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for label, fn in (("plain boto3 upload_file (baseline)", plain),
                              (f"restore -> MultipartWriter x{args.concurrency} (flow)", flow),
                              ("restore -> nowhere (store ceiling)", ceiling)):
                seconds = timed(label, size, fn)
                best[label] = min(best.get(label, seconds), seconds)
        store.close()
        # the sandbox saves its buckets when it stops: gigabytes of bench objects took minutes
        for key in ("plain", "flow", "flow-rss"):
            s3.delete_object(Bucket=bucket, Key=f"strongroom-tmp/bench/{key}.qcow2")
        base, ours, *_ = best.values()
        print(f"best of {args.repeat}:")
        for label, seconds in best.items():
            print(f"  {label:50s} {size / seconds / 1e6:8.1f} MB/s")
        ratio = base / ours
        print(f"restore upload / plain upload_file: {ratio:6.1%}   (target >= 80%: "
              f"{'MET' if ratio >= 0.8 else 'MISSED'})")
    print(f"load average after: {load()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
