"""The daemon with the real backup flow against the sandbox: a detached volume backup, and a
daemon killed in the middle of one (its temporaries are swept when it starts again)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.daemon.paths import daemon_paths
from engine.scaleway.api import Apis
from engine.scaleway.config import scw_client
from tests.conftest import running
from tests.fixtures.store import REPO_ROOT
from tests.scaleway.helpers import leftovers

PASS = "daemon volume passphrase"
VOLUME, ZONE = "dev-scratch", "fr-par-2"  # a seeded volume, and its zone
NOTHING = {"objects": [], "uploads": [], "snapshots": []}


@pytest.fixture
def cli(tmp_path: Path, scw_env: Any,
        monkeypatch: pytest.MonkeyPatch) -> Callable[..., subprocess.CompletedProcess]:
    monkeypatch.setenv("STRONGROOM_PASSPHRASE", PASS)
    monkeypatch.setenv("STRONGROOM_KDF_MEMORY_KIB", "8192")
    store = tmp_path / "store"

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", "--store", str(store), *args],
                              capture_output=True, text=True, env=dict(os.environ),
                              cwd=REPO_ROOT, timeout=timeout)

    assert run("init").returncode == 0
    return run


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _job(cli: Callable[..., subprocess.CompletedProcess], job_id: str) -> dict:
    listed = cli("--json", "jobs", "--all")
    assert listed.returncode == 0, listed.stderr
    (job,) = [j for j in json.loads(listed.stdout) if j["id"] == job_id]
    return job


def test_a_detached_volume_backup_ends_with_its_snapshot(
        cli: Callable[..., subprocess.CompletedProcess], sandbox_faults: Any) -> None:
    started = time.monotonic()
    res = cli("--json", "backup", VOLUME, "--detach")
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - started < 20
    job_id = json.loads(res.stdout)["job"]
    assert _job(cli, job_id)["state"] in ("pending", "running", "done")
    assert cli("jobs", "wait", job_id).returncode == 0
    job = _job(cli, job_id)
    assert job["state"] == "done" and job["kind"] == "backup"
    snapshots = json.loads(cli("--json", "snapshots").stdout)
    assert job["result"]["snapshot"] in {s["id"] for s in snapshots}


def test_a_daemon_killed_mid_backup_sweeps_its_temporaries_on_restart(
        cli: Callable[..., subprocess.CompletedProcess], sandbox_faults: Any) -> None:
    apis = Apis(scw_client())
    bucket = sandbox_faults.buckets["fr-par"]
    res = cli("--json", "backup", VOLUME, "--detach")
    assert res.returncode == 0, res.stderr
    job_id = json.loads(res.stdout)["job"]
    sandbox_faults.faults(latency_ms=1500)  # every call slow from now: the kill lands mid-flow
    _wait_for(lambda: leftovers(apis, ZONE, bucket)["snapshots"], 90, "a temporary snapshot")
    pid = int(daemon_paths().lock.read_text())
    os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: not running(pid), 30, "the daemon to die")
    sandbox_faults.faults()
    assert leftovers(apis, ZONE, bucket)["snapshots"]  # left by the killed job
    job = _job(cli, job_id)  # starts a new daemon, which sweeps
    assert job["state"] == "interrupted"
    try:
        _wait_for(lambda: leftovers(apis, ZONE, bucket) == NOTHING, 60, "the sweep")
    except AssertionError:
        raise AssertionError((leftovers(apis, ZONE, bucket), daemon_paths().log.read_text()[-3000:]))
    check = cli("check", "--read-data")
    assert check.returncode == 0, check.stderr
    # the daemon swept, then stopped sweeping: nothing of the job is left
    _wait_for(lambda: f"nothing of interrupted job {job_id} is left"
              in daemon_paths().log.read_text(), 60, "the sweeps to end")
    assert "swept snapshot" in daemon_paths().log.read_text()
