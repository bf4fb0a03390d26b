"""Shared fixtures. Each area keeps its own fixtures in tests/<area>/conftest.py or here,
named for what they provide."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

# Each area keeps its fixtures in its own module so the areas grow apart.
pytest_plugins = [f"tests.fixtures.{area}" for area in
                  ("store", "sandbox", "scaleway", "explore", "tui")]


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never touch the developer's real store, cache or config from a test."""
    home = tmp_path_factory.mktemp("home")
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_CACHE_HOME", "cache"),
                     ("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state")):
        monkeypatch.setenv(var, str(home / sub))
    for var in list(os.environ):
        if var.startswith(("SCW_", "STRONGROOM_")):
            monkeypatch.delenv(var, raising=False)
    # A daemon a test starts lives in this test's own runtime folder (short: a socket path
    # holds 107 bytes), and is stopped when the test ends; idle ones go by themselves.
    runtime = tempfile.mkdtemp(prefix="sr-run-", dir="/tmp")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    monkeypatch.setenv("STRONGROOM_DAEMON_IDLE", "120")
    yield
    stop_daemon(Path(runtime))
    shutil.rmtree(runtime, ignore_errors=True)


def stop_daemon(runtime: Path) -> None:
    """Stop the daemon of a runtime folder, if one runs (SIGKILL if it will not stop)."""
    lock = runtime / "strongroom" / "daemon.lock"
    try:
        pid = int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        return
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and running(pid):
            time.sleep(0.05)
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def running(pid: int) -> bool:
    """Alive and not a zombie (a daemon this test process started is its child: reap it)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
