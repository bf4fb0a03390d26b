#!/usr/bin/env python3
"""Where does Strongroom's backup and restore CPU go? py-spy samples, grouped by cost.

Backs up v1 (make_images) into a fresh store and restores it, each under
`py-spy record --native` (all threads, native frames), then prints the share of samples per
category — zstd, BLAKE3, FastCDC, AES-GCM, read/write syscalls, Python GC, Argon2, SQLite, GIL and
queue waits, the interpreter — and the Python lines that cost most. py-spy is a dev tool: install
it into the venv (`/work/venv/bin/pip install py-spy`); it is not a project dependency.

    python bench/profile_store.py [--size 1.2G] [--rate 100] [--top 12]
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

from make_images import ensure_images, parse_size
from measure import BENCH_DIR, load, repo_root

PASSPHRASE = "bench-passphrase-not-secret"
WAIT = "waiting: GIL hand-offs, queues, idle threads"
# (substring of the innermost frame, category); first match wins
LEAF_CATEGORIES = (
    ("pthread_cond_timedwait", WAIT), ("ZSTD_", "zstd"), ("HUF_", "zstd"), ("FSE_", "zstd"),
    ("BIT_", "zstd"), ("fastcdc", "FastCDC chunking"), ("blake3", "BLAKE3"), ("aesni", "AES-GCM"),
    ("gcm", "AES-GCM"), ("gc_collect", "Python GC"), ("sqlite", "SQLite"), ("fsync", "fsync"),
    ("getrandom", "os.urandom (nonces)"),
)
# (substring anywhere in the stack, category) for what the leaf does not name
STACK_CATEGORIES = (
    ("_kek", "Argon2 KDF (opening the store)"), ("preadv", "read syscalls"), ("read (libc", "read syscalls"),
    ("_read_into", "read syscalls"), ("pwrite", "write syscalls"), ("_write_all", "write syscalls"),
    ("PyEval_RestoreThread", WAIT), ("SimpleQueue_get", WAIT), ("lock_PyThread_acquire_lock", WAIT),
    ("<frozen importlib", "imports (start-up)"),
)


def categorise(frames: list[str]) -> str:
    leaf = frames[-1] if frames else "?"
    if not any(".py:" in f or "libpython" in f and "gc_collect" not in f for f in frames):
        # a bare libc frame (+ a guessed symbol): py-spy could not unwind this thread; it is
        # not the GC of a Python thread (turning the GC off does not remove it)
        return "unattributed native stack (no Python frames)"
    for key, name in LEAF_CATEGORIES:
        if key in leaf:
            return name
    stack = ";".join(frames)
    for key, name in STACK_CATEGORIES:
        if key in stack:
            return name
    return "Python interpreter, allocation, other"


def summarise(raw: Path, top: int) -> None:
    by_cat: collections.Counter[str] = collections.Counter()
    by_line: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, n_text = line.rsplit(" ", 1)
        n = int(n_text)
        frames = stack.split(";")[1:]  # first item is the thread
        total += n
        cat = categorise(frames)
        by_cat[cat] += n
        if cat != WAIT:
            py = [f for f in frames if ".py:" in f]
            by_line[py[-1] if py else "(no Python frame)"] += n
    busy = total - by_cat[WAIT]
    print(f"  {total} samples, {busy} busy (on CPU)")
    for cat, n in by_cat.most_common():
        share = "" if cat == WAIT else f"{100 * n / busy:5.1f}% of busy"
        print(f"    {100 * n / total:5.1f}% of all  {share:>15}  {cat}")
    print(f"  busy samples by innermost Python line (top {top}):")
    for where, n in by_line.most_common(top):
        print(f"    {100 * n / busy:5.1f}%  {where}")


def main() -> int:
    ap = argparse.ArgumentParser(description="Profile strongroom backup/restore of v1 with py-spy.")
    ap.add_argument("--size", default="1.2G")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=int, default=100, help="samples per second (default 100)")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(spy):
        raise SystemExit("bench: py-spy not found: /work/venv/bin/pip install py-spy")
    images = ensure_images(parse_size(args.size), args.seed,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    root = repo_root()
    run_dir = BENCH_DIR / "work" / "profile" / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    home = run_dir / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), XDG_DATA_HOME=str(home / ".local/share"),
               XDG_CONFIG_HOME=str(home / ".config"), STRONGROOM_PASSPHRASE=PASSPHRASE,
               STRONGROOM_NO_DAEMON="1")  # profile the process doing the work
    store = run_dir / "store"
    cli = [sys.executable, "-m", "cli", "--store", str(store)]
    subprocess.run([*cli, "init"], env=env, cwd=root, check=True, capture_output=True)
    steps = (("backup", ["backup-image", str(images.v1)]),
             ("restore", ["restore-image", "latest", str(run_dir / "restored.img")]))
    print(f"load average before {load()}")
    for name, cmd in steps:
        raw = run_dir / f"{name}.txt"
        print(f"\n{name} of v1 ({images.v1.stat().st_size / 2**20:.0f} MiB):", flush=True)
        subprocess.run([spy, "record", "--native", "-r", str(args.rate), "-f", "raw", "-o", str(raw),
                        "--", *cli, *cmd], env=env, cwd=root, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        summarise(raw, args.top)
    print(f"\nload average after {load()}; raw stacks kept in {run_dir} (flamegraph.pl input)")
    (run_dir / "restored.img").unlink(missing_ok=True)
    shutil.rmtree(store, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
