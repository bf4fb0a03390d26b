"""`strongroom demo` removes what killed demos left in the temp folder, and nothing else."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli.commands.app import DEMO_PREFIX, OWNER, sweep_dead_demos


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has this id now (reuse this soon is very unlikely)


def test_only_folders_of_dead_demos_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / f"{DEMO_PREFIX}dead"
    (dead / "store").mkdir(parents=True)
    (dead / OWNER).write_text(f"{_dead_pid()}\n")
    live = tmp_path / f"{DEMO_PREFIX}live"
    live.mkdir()
    (live / OWNER).write_text(f"{os.getppid()}\n")
    unowned = tmp_path / f"{DEMO_PREFIX}unowned"  # an older demo, or one still starting
    unowned.mkdir()
    other = tmp_path / "something-else"
    other.mkdir()
    (other / OWNER).write_text(f"{_dead_pid()}\n")

    assert sweep_dead_demos(tmp_path) == [dead]
    assert not dead.exists()
    assert live.is_dir() and unowned.is_dir() and other.is_dir()
