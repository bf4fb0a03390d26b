#!/usr/bin/env python3
"""Two (or more) checkouts of Strongroom side by side: the same command, runs alternating.

How each change of issue 15's third pass was judged. One tree is the code before a change,
the other the code after (a `git worktree`, say). Each round runs the step once per tree, in
turn, so load on the shared machine hits all trees alike, and prints the median wall and
CPU seconds per tree. A tree may carry environment variables, to try a knob without a
commit: ``/work/exp:STRONGROOM_X=1``.

- ``backup``: bench v1 (make_images.py) into a fresh local store, `init` then `backup-image`,
  with the image read once before each run so that it comes from the page cache.
- ``restore``: `restore-image` of v1 to a new file, from a local store made once with the
  first tree (the format is the same across trees); `sync` before each run.

    python bench/ab.py TREE[:VAR=VALUE...] TREE... [--step backup|restore] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from make_images import ensure_images, parse_size
from measure import BENCH_DIR, Run, load, run_measured, warm

PASSPHRASE = "bench-passphrase-not-secret"


def parse_tree(spec: str) -> tuple[Path, dict[str, str]]:
    root, *pairs = spec.split(":")
    env = dict(pair.split("=", 1) for pair in pairs)
    return Path(root).resolve(), env


def cli(tree: Path, env: dict[str, str], store: Path, *args: str) -> Run:
    """One `python -m cli` run in ``tree``: measure.run_measured's wall and CPU seconds."""
    return run_measured([sys.executable, "-m", "cli", "--store", str(store), *args],
                        env=env, cwd=tree, log_dir=store.parent / "logs", label=args[0]).check()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+", help="checkout[:VAR=VALUE...]")
    ap.add_argument("--step", choices=("backup", "restore"), default="backup")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", default="1.2G")
    args = ap.parse_args()
    image = ensure_images(parse_size(args.size)).v1
    work = Path(tempfile.mkdtemp(prefix="ab-", dir=BENCH_DIR / "work"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    base.update(STRONGROOM_PASSPHRASE=PASSPHRASE, STRONGROOM_NO_DAEMON="1",
                XDG_CACHE_HOME=str(work / "cache"), XDG_CONFIG_HOME=str(work / "config"))
    trees = [parse_tree(spec) for spec in args.trees]
    runs: dict[str, list[tuple[float, float]]] = {spec: [] for spec in args.trees}
    print(f"{args.step} of {image.name}, {args.rounds} rounds; load {load()}", flush=True)
    try:
        snapshot = ""
        if args.step == "restore":
            tree, env = trees[0]
            cli(tree, {**base, **env}, work / "store", "init")
            backed = cli(tree, {**base, **env}, work / "store", "--json", "backup-image",
                         str(image))
            snapshot = json.loads(backed.stdout)["snapshot"]
        for _ in range(args.rounds):
            for spec, (tree, env) in zip(args.trees, trees):
                if args.step == "backup":
                    shutil.rmtree(work / "store", ignore_errors=True)
                    cli(tree, {**base, **env}, work / "store", "init")
                    warm(image)
                    run = cli(tree, {**base, **env}, work / "store", "backup-image", str(image))
                else:
                    (work / "out.img").unlink(missing_ok=True)
                    os.sync()
                    run = cli(tree, {**base, **env}, work / "store", "restore-image", snapshot,
                              str(work / "out.img"))
                runs[spec].append((run.seconds, run.cpu_seconds))
                print(f"  {spec:40} wall {run.seconds:.2f} s  CPU {run.cpu_seconds:.2f} s",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for spec, done in runs.items():
        wall = statistics.median(w for w, _ in done)
        cpu = statistics.median(c for _, c in done)
        print(f"{spec:40} median wall {wall:.3f} s  CPU {cpu:.2f} s  "
              f"({image.stat().st_size / 1e6 / wall:.0f} MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
