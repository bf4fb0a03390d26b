"""The CLI's frame: usage errors exit 2 with one line and no traceback."""
from __future__ import annotations

import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args],
                          capture_output=True, text=True, timeout=60)


def test_unknown_command_is_a_usage_error() -> None:
    r = _run("no-such-command")
    assert r.returncode == 2
    assert r.stderr.startswith("strongroom: error: ")
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
