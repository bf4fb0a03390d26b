"""Throwaway folders of `strongroom demo` and `strongroom sandbox`: in the temp folder, marked with
their process's id, removed on exit, and swept by the next one when that process was killed."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

DEMO_PREFIX = "strongroom-demo-"
OWNER = "owner.pid"


def sweep_dead_demos(tmp_root: Path | None = None) -> list[Path]:
    """Remove the folders of demos whose process is gone (killed, or the machine lost power
    mid-demo: its throwaway store and sandbox would otherwise stay in the temp folder)."""
    removed = []
    for folder in Path(tmp_root or tempfile.gettempdir()).glob(DEMO_PREFIX + "*"):
        try:
            pid = int((folder / OWNER).read_text())
        except (OSError, ValueError):
            continue  # not one of ours, or still being set up: leave it
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def throwaway_dir(what: str) -> contextlib.AbstractContextManager[str]:
    """A temporary folder marked with this process's id, removed on exit (and, should this
    process be killed, by the next demo or sandbox: sweep_dead_demos)."""
    sweep_dead_demos()  # those of demos and sandboxes that were killed
    folder = tempfile.TemporaryDirectory(prefix=f"{DEMO_PREFIX}{what}-")
    (Path(folder.name) / OWNER).write_text(f"{os.getpid()}\n")
    return folder
