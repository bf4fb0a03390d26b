"""Time from `strongroom demo` to its first screen, and to the inventory filled in, in tmux.

    python3 bench/demo_start.py [--runs 3] [--exe PATH ...]

Each --exe is a `strongroom` console script (default: the one beside this Python); several are
run in turn, so figures taken in the same run can be compared (e.g. the main branch's venv
against a work tree's). Each run has its own HOME and XDG folders. Prints, per run: seconds to
the first screen drawn by the app (its header), seconds to the inventory's first project, and
whether keys typed meanwhile ("/zzq" sent 0.3 s after start) reached a filter or input.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SESSION = "strongroom-bench-demo"
FIRST = "Strongroom"          # the header's title: the app has drawn
FILLED = "web-production"     # a project of the sandbox's inventory


def capture() -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", SESSION], capture_output=True,
                          text=True).stdout


def one_run(exe: str, timeout: float) -> tuple[float, float, str]:
    home = Path(tempfile.mkdtemp(prefix="bench-demo-home-"))
    env = " ".join(f"{k}={home / v}" for k, v in (
        ("HOME", "."), ("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
        ("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state")))
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    start = time.monotonic()
    subprocess.run(["tmux", "new-session", "-d", "-s", SESSION, "-x", "120", "-y", "36",
                    f"env {env} {exe} demo"], check=True)
    time.sleep(0.3)
    subprocess.run(["tmux", "send-keys", "-t", SESSION, "/zzq"])
    first = filled = float("nan")
    while time.monotonic() - start < timeout:
        screen = capture()
        now = time.monotonic() - start
        if first != first and FIRST in screen:
            first = now
        if FILLED in screen:
            filled = now
            break
        time.sleep(0.05)
    time.sleep(0.5)
    screen = capture()
    leaked = "yes" if "zzq" in screen else "no"
    subprocess.run(["tmux", "send-keys", "-t", SESSION, "C-q"])
    time.sleep(3)
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)
    return first, filled, leaked


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--exe", action="append")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    exes = args.exe or [str(Path(sys.executable).with_name("strongroom"))]
    print(f"load average before: {os.getloadavg()}")
    for exe in exes:
        for i in range(args.runs):
            first, filled, leaked = one_run(exe, args.timeout)
            print(f"{exe}: run {i + 1}: first screen {first:.2f} s, inventory {filled:.2f} s, "
                  f"typed keys leaked: {leaked}", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
