"""Store hygiene: what a crash or a failing store leaves behind, and what comes after it.

``.tmp-*`` files of killed writers are cleaned by the next writer and reported by check."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from engine.store import Store
from tests.fixtures.store import PASSPHRASE, REPO_ROOT

def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*")]


# Writes one store file in a process that SIGKILLs itself once the temp file is written, before
# it is renamed: what a writer killed mid-put leaves.
_KILLED_PUT = """
import os, signal, sys
from engine.store.backends import LocalBackend
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
LocalBackend(sys.argv[1]).put("packs/ab/" + "ab" * 32, b"x" * 100_000)
"""


def test_temp_files_of_killed_writers_are_reported_then_removed(tmp_path: Path, store_dir: Path,
                                                                store_cli) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_PUT, str(store_dir)], cwd=REPO_ROOT)
    assert proc.wait() == -signal.SIGKILL
    [dead] = _temps(store_dir)  # its name says whose it was
    assert dead.parent == store_dir / "packs" / "ab"
    assert dead.name.endswith(f"-{proc.pid}@{_host()}")
    # A writer of this process (running), a temp of unknown origin written just now, and one
    # left for hours: only the last is known to be a dead writer's besides the killed one.
    running = store_dir / "index" / f".tmp-{'cd' * 32}-0123abcd-{os.getpid()}@{_host()}"
    running.parent.mkdir(exist_ok=True)
    running.write_bytes(b"y")
    recent = store_dir / "packs" / ".tmp-deadbeef-0000"
    recent.write_bytes(b"partial")
    old = store_dir / ".tmp-config-1111"
    old.write_bytes(b"z")
    os.utime(old, (os.path.getmtime(old) - 3 * 3600,) * 2)
    with Store.open(str(store_dir), PASSPHRASE) as store:
        # check sees them all, as warnings, not damage
        report = store.check()
        assert report.ok and report.problems == []
        warned = {w.split()[3]: w for w in report.warnings}
        assert set(warned) == {str(p.relative_to(store_dir)) for p in (dead, running, recent,
                                                                        old)}
        assert "writer is gone" in warned[str(dead.relative_to(store_dir))]
        assert "writer is gone" in warned[".tmp-config-1111"]
        assert "may still be running" in warned[str(recent.relative_to(store_dir))]
        # a writer removes the dead writers' temps, and only those
        image = tmp_path / "a.img"
        image.write_bytes(os.urandom(200_000))
        with open(image, "rb") as source:
            store.backup(source, name="a")
        assert sorted(_temps(store_dir)) == sorted([running, recent])
        assert len(store.check().warnings) == 2


def _host() -> str:
    from engine.store.backends.local import _host_for_name

    return _host_for_name()
