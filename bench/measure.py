"""Shared helpers for the bench scripts: run a child and measure it, repo size, hashing, caches."""
from __future__ import annotations

import hashlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
MiB = 1 << 20


def repo_root() -> Path:
    """The Strongroom checkout holding this bench/ folder (where `python -m cli` works)."""
    for d in (BENCH_DIR, *BENCH_DIR.parents):
        if (d / "cli" / "main.py").exists() and (d / "pyproject.toml").exists():
            return d
    raise SystemExit("bench: cannot find the Strongroom checkout (cli/main.py) above bench/")


@dataclass
class Run:
    cmd: list[str]
    rc: int
    seconds: float
    max_rss: int          # bytes, peak resident set of the child (and any children it waited for)
    cpu_seconds: float    # user + system CPU time of the child: comparable even under load
    stdout: str
    stderr: str

    def check(self) -> "Run":
        if self.rc != 0:
            tail = "\n".join(self.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"{' '.join(self.cmd[:6])} … exited {self.rc}:\n{tail}")
        return self


def run_measured(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                 log_dir: Path, label: str, stdin_path: Path | None = None) -> Run:
    """Run one fresh child; wall time and its own peak RSS from wait4 (not a running max)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{label}.out", log_dir / f"{label}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err, \
            open(stdin_path or os.devnull, "rb") as stdin:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(cmd, proc.returncode, seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime,
               out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))


def tree_size(path: Path) -> int:
    """Apparent size of every file under path (the repository's bytes on disk)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def drop_caches() -> bool:
    """Empty the page cache so reads come from disk; False if not permitted here."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def warm(path: Path) -> None:
    """Read a file (or every file under a folder) once, so it sits in the page cache for every
    tool alike."""
    paths = [path] if path.is_file() else [Path(r) / n for r, _, fs in os.walk(path) for n in fs]
    buf = bytearray(8 * MiB)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def mib(n: float) -> str:
    return f"{n / MiB:.1f}"
