"""`strongroom sandbox` in a real subprocess: export lines on stdout, clean stop on a signal."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

EXPECTED = ["SCW_API_URL", "SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_ORGANIZATION_ID",
            "SCW_DEFAULT_PROJECT_ID", "SCW_DEFAULT_REGION", "SCW_DEFAULT_ZONE",
            "STRONGROOM_S3_ENDPOINT"]
ROOT = Path(__file__).resolve().parents[2]


def _start(state: Path, *extra: str) -> tuple[subprocess.Popen, dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "cli", "sandbox", "--state", str(state),
                             "--profile", "small", "--fault", "latency_ms=1", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items()
                                 if not k.startswith("SCW_")})
    env: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while len(env) < len(EXPECTED) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        assert line.startswith("export "), line
        name, _, value = line[len("export "):].strip().partition("=")
        env[name] = value
    return proc, env


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state folder for the module: the second start reuses the built volumes."""
    return tmp_path_factory.mktemp("command") / "state"


def test_prints_exports_and_stops_on_sigterm(state_dir):
    proc, env = _start(state_dir)
    try:
        assert list(env) == EXPECTED
        assert env["SCW_API_URL"].startswith("http://127.0.0.1:")
        faults = requests.get(f"{env['SCW_API_URL']}/_sandbox/faults", timeout=30).json()
        assert faults["latency_ms"] == 1
        answer = requests.get(f"{env['SCW_API_URL']}/account/v3/projects",
                              headers={"X-Auth-Token": env["SCW_SECRET_KEY"]}, timeout=30)
        assert answer.status_code == 200 and answer.json()["total_count"] == 3
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "sandbox stopped" in err
        assert env["SCW_SECRET_KEY"] not in err
        assert (state_dir / "state.json").is_file()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stops_on_sigint(state_dir):
    proc, env = _start(state_dir)
    try:
        assert len(env) == len(EXPECTED)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_fault_is_a_usage_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cli", "sandbox", "--state",
                           str(tmp_path), "--fault", "latency"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("strongroom: error: --fault")
    assert len(done.stderr.strip().splitlines()) == 1


def test_json_prints_one_document(state_dir):
    proc = subprocess.Popen([sys.executable, "-m", "cli", "--json", "sandbox", "--state",
                             str(state_dir), "--profile", "small"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or lines[-1] != "}\n":
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        doc = __import__("json").loads("".join(lines))
        assert list(doc["env"]) == EXPECTED
        assert doc["buckets"]["nl-ams"] == "strongroom-staging-nl-ams"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_realistic_timing_mode(state_dir):
    proc, env = _start(state_dir, "--timing", "realistic", "--time-scale", "0.5",
                       "--fault", "streak_429=3")
    try:
        delays = requests.get(f"{env['SCW_API_URL']}/_sandbox/delays", timeout=30).json()
        assert delays["realistic"] == 0.5
        faults = requests.get(f"{env['SCW_API_URL']}/_sandbox/faults", timeout=30).json()
        assert faults["streak_429"] == 3
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("argv", [
    ["sandbox", "--timing", "realistic", "--delay", "1"],
    ["sandbox", "--time-scale", "2"],
    ["demo", "--timing", "realistic", "--time-scale", "0"],
])
def test_timing_options_are_checked_before_anything_starts(tmp_path, argv, capsys):
    from cli.main import main

    if argv[0] == "sandbox":
        argv = [*argv, "--state", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("strongroom: error: --") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "state.json").exists()
