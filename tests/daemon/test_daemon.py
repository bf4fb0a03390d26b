"""The job daemon as real processes: started on demand by the CLI, killed, restarted, spoken to
over its socket by good and bad clients."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.daemon.client import DaemonClient, connect
from engine.daemon.paths import daemon_paths
from tests.conftest import running
from tests.fixtures.store import REPO_ROOT, CliResult

MiB = 1024 * 1024


def _pid() -> int:
    return int(daemon_paths().lock.read_text().strip())


def _wait_for(check: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def _jobs(store_cli: Callable[..., CliResult]) -> list[dict]:
    res = store_cli("jobs", "--all", "--json")
    assert res.code == 0, res.stderr
    return json.loads(res.out)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(os.urandom(6 * MiB))
    return path


class SlowSource:
    """A FIFO that a job reads as its image, fed 1 MiB at a time, ``pause`` seconds apart,
    until told to stop: a job that stays in its transfer for as long as a test needs."""

    def __init__(self, path: Path, pause: float = 0.2) -> None:
        os.mkfifo(path)
        self.path, self.pause = path, pause
        self.stop = threading.Event()
        self.fed = 0
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        try:
            with open(self.path, "wb") as fifo:
                while not self.stop.is_set():
                    fifo.write(os.urandom(MiB))
                    fifo.flush()
                    self.fed += MiB
                    time.sleep(self.pause)
        except BrokenPipeError:
            pass  # the reader went away (cancelled, or its daemon killed)

    def close(self) -> None:
        self.stop.set()
        self._thread.join(10)


@pytest.fixture
def slow_source(tmp_path: Path) -> Iterator[SlowSource]:
    source = SlowSource(tmp_path / "slow.fifo")
    yield source
    source.close()


def test_detach_returns_at_once_then_jobs_and_wait_tell_the_end(
        store_dir: Path, store_cli: Callable[..., CliResult], image: Path) -> None:
    started = time.monotonic()
    res = store_cli("--json", "backup-image", str(image), "--name", "detached", "--detach")
    assert res.code == 0, res.stderr
    assert time.monotonic() - started < 15
    job = json.loads(res.out)["job"]
    assert job in {j["id"] for j in _jobs(store_cli)}
    assert store_cli("jobs", "wait", job[:8]).code == 0
    (listed,) = [j for j in _jobs(store_cli) if j["id"] == job]
    assert listed["state"] == "done" and listed["kind"] == "backup-image"
    snapshot = listed["result"]["snapshot"]["id"]
    snapshots = json.loads(store_cli("--json", "snapshots").out)
    assert [s["id"] for s in snapshots] == [snapshot]


def test_a_followed_job_prints_the_same_as_in_process(
        store_dir: Path, store_cli: Callable[..., CliResult], image: Path) -> None:
    via_daemon = store_cli("--json", "backup-image", str(image))
    here = store_cli("--json", "backup-image", str(image), "--no-daemon")
    assert via_daemon.code == here.code == 0
    a, b = json.loads(via_daemon.out), json.loads(here.out)
    assert set(a) == set(b) == {"snapshot", "bytes", "stored_bytes", "seconds"}
    assert a["bytes"] == b["bytes"] == image.stat().st_size
    assert b["stored_bytes"] == 0  # the second backup found every chunk in the store


def test_a_failed_job_exits_with_its_own_code_and_message(
        store_dir: Path, store_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    missing = store_cli("backup-image", str(tmp_path / "nothing.img"))
    assert missing.code == 2 and "no such file" in missing.stderr
    wrong = store_cli("backup-image", str(tmp_path / "nothing.img"), passphrase="wrong")
    assert wrong.code == 2 and "passphrase" in wrong.stderr
    assert "wrong" not in wrong.stderr.replace("wrong passphrase", "")


def test_a_second_daemon_says_where_the_first_is(
        store_dir: Path, store_cli: Callable[..., CliResult], image: Path) -> None:
    assert store_cli("backup-image", str(image)).code == 0
    first = _pid()
    second = subprocess.run([sys.executable, "-m", "cli", "daemon"], capture_output=True,
                            text=True, timeout=60, cwd=REPO_ROOT)
    assert second.returncode == 0
    assert f"already running (pid {first})" in second.stdout
    assert str(daemon_paths().socket) in second.stdout
    assert _pid() == first and running(first)


def test_a_killed_daemons_socket_is_replaced(
        store_dir: Path, store_cli: Callable[..., CliResult], image: Path) -> None:
    assert store_cli("backup-image", str(image)).code == 0
    old = _pid()
    os.kill(old, signal.SIGKILL)
    _wait_for(lambda: not running(old), what="the daemon to die")
    assert daemon_paths().socket.exists()  # left behind by the killed daemon
    res = store_cli("--json", "backup-image", str(image))
    assert res.code == 0, res.stderr
    assert _pid() != old


def test_sigkill_during_a_job_leaves_it_interrupted_and_the_store_sound(
        store_dir: Path, store_cli: Callable[..., CliResult], slow_source: SlowSource) -> None:
    res = store_cli("--json", "backup-image", str(slow_source.path), "--detach")
    job = json.loads(res.out)["job"]
    _wait_for(lambda: slow_source.fed >= 3 * MiB, what="the job to read")
    os.kill(_pid(), signal.SIGKILL)
    slow_source.close()
    (listed,) = [j for j in _jobs(store_cli) if j["id"] == job]  # starts a new daemon
    assert listed["state"] == "interrupted"
    assert "the daemon stopped" in listed["error"]["message"]
    assert store_cli("jobs", "wait", job).code == 1
    check = store_cli("check", "--read-data")
    assert check.code == 0, check.stderr
    assert json.loads(store_cli("--json", "snapshots").out) == []


def test_ctrl_c_cancels_the_followed_job(
        store_dir: Path, store_cli: Callable[..., CliResult], slow_source: SlowSource) -> None:
    env = dict(os.environ, STRONGROOM_PASSPHRASE="correct horse battery staple")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "--store", str(store_dir),
                             "backup-image", str(slow_source.path)], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: slow_source.fed >= 2 * MiB, what="the job to read")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (job,) = _jobs(store_cli)
    assert job["state"] == "cancelled"
    assert json.loads(store_cli("--json", "snapshots").out) == []


def test_a_dropped_terminal_never_cancels_the_job(
        store_dir: Path, store_cli: Callable[..., CliResult], slow_source: SlowSource) -> None:
    env = dict(os.environ, STRONGROOM_PASSPHRASE="correct horse battery staple")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "--store", str(store_dir),
                             "backup-image", str(slow_source.path)], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: slow_source.fed >= 2 * MiB, what="the job to read")
    proc.send_signal(signal.SIGHUP)  # what a closed SSH session sends
    proc.wait(30)
    assert proc.returncode == 129
    (job,) = _jobs(store_cli)
    assert job["state"] == "running"
    slow_source.close()  # end of the image: the job can finish
    assert store_cli("jobs", "wait", job["id"]).code == 0
    (job,) = _jobs(store_cli)
    assert job["state"] == "done" and job["result"]["bytes"] == slow_source.fed


def test_bad_clients_get_an_error_and_the_daemon_serves_on(
        store_dir: Path, store_cli: Callable[..., CliResult], image: Path) -> None:
    assert store_cli("backup-image", str(image)).code == 0
    path = str(daemon_paths().socket)
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(path)
        stream = raw.makefile("rwb")
        for line, expect in ((b"this is not json\n", "not a JSON line"),
                             (b'{"op": "format-disk"}\n', "unknown request"),
                             (b'{"op": "events", "job": "ffffffffffff"}\n', "no job"),
                             (b'{"op": "events"}\n', "bad request"),
                             (b'{"op": "submit", "spec": {"kind": "format"}, "context": '
                              b'{"store_url": "/x"}}\n', "unknown job kind")):
            stream.write(line)
            stream.flush()
            reply = json.loads(stream.readline())
            assert reply["ok"] is False and expect in reply["error"], reply
    # a client that subscribes, then goes away mid-stream, and one cut mid-line
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(path)
        raw.sendall(b'{"op": "subscribe", "job": null}\n')
        raw.recv(100)
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(path)
        raw.sendall(b'{"op": "hel')
    with connect(start=False) as client:
        assert client.hello()["pid"] == _pid()
    assert store_cli("backup-image", str(image)).code == 0
    log = daemon_paths().log.read_text()
    assert "bad request" in log and "correct horse" not in log


def test_the_socket_is_private_and_never_tcp(
        store_dir: Path, store_cli: Callable[..., CliResult], image: Path) -> None:
    assert store_cli("backup-image", str(image)).code == 0
    paths = daemon_paths()
    assert stat.S_IMODE(paths.runtime.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.socket.stat().st_mode) == 0o600
    pid = _pid()
    inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")
              if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")}
    for table in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        assert not inodes & {line.split()[9] for line in lines}, table


SYSTEM_PYTHON = "/usr/bin/python3"  # one that another user may run (the venv's may be in /root)


@pytest.mark.skipif(os.getuid() != 0 or not os.path.exists(SYSTEM_PYTHON),
                    reason="needs root (to act as another user) and a system python3")
def test_another_user_cannot_connect(
        store_dir: Path, store_cli: Callable[..., CliResult], image: Path) -> None:
    assert store_cli("backup-image", str(image)).code == 0
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(3)\n")
    res = subprocess.run([SYSTEM_PYTHON, "-c", probe, str(daemon_paths().socket)],
                         user=65534, group=65534, capture_output=True, timeout=30)
    assert res.returncode == 3, res.stderr


def test_an_idle_daemon_exits_by_itself(store_dir: Path, store_cli: Callable[..., CliResult],
                                        image: Path) -> None:
    res = store_cli("backup-image", str(image), env={"STRONGROOM_DAEMON_IDLE": "0.5"})
    assert res.code == 0, res.stderr
    pid = _pid()
    _wait_for(lambda: not running(pid), timeout=30, what="the idle daemon to exit")
    assert not daemon_paths().socket.exists()


def test_stop_and_status(store_dir: Path, store_cli: Callable[..., CliResult],
                         image: Path) -> None:
    assert store_cli("daemon", "--status").code == 1
    assert store_cli("backup-image", str(image)).code == 0
    status = store_cli("--json", "daemon", "--status")
    assert status.code == 0 and json.loads(status.out)["pid"] == _pid()
    pid = _pid()
    assert store_cli("daemon", "--stop").code == 0
    _wait_for(lambda: not running(pid), what="the daemon to stop")
    assert store_cli("daemon", "--status").code == 1


def test_finished_jobs_survive_a_restart(store_dir: Path, store_cli: Callable[..., CliResult],
                                         image: Path) -> None:
    res = store_cli("--json", "backup-image", str(image))
    snapshot = json.loads(res.out)["snapshot"]
    assert store_cli("daemon", "--stop").code == 0
    (job,) = _jobs(store_cli)
    assert job["state"] == "done" and job["result"]["snapshot"]["id"] == snapshot
    shown = json.loads(store_cli("--json", "jobs", "show", job["id"][:6]).out)
    assert [p["name"] for p in shown["phases"]] == ["backup"]


def test_a_job_id_prefix_must_be_unique_and_long_enough(
        store_dir: Path, store_cli: Callable[..., CliResult], image: Path) -> None:
    assert store_cli("backup-image", str(image)).code == 0
    (job,) = _jobs(store_cli)
    short = store_cli("jobs", "show", job["id"][:4])
    assert short.code == 2 and "at least 6" in short.stderr
    assert store_cli("jobs", "show", "zzzzzzzz").code == 2


def test_clients_of_another_environment_are_refused(
        store_dir: Path, store_cli: Callable[..., CliResult], image: Path) -> None:
    assert store_cli("backup-image", str(image)).code == 0
    other = store_cli("backup-image", str(image), env={"SCW_PROFILE": "elsewhere"})
    assert other.code == 2 and "daemon --stop" in other.stderr
    with DaemonClient() as client:
        assert client.hello()["running"] == 0


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_term_and_hup_clean_up_an_in_process_job(store_dir: Path, slow_source: SlowSource,
                                                 store_cli: Callable[..., CliResult],
                                                 sig: int, code: int) -> None:
    env = dict(os.environ, STRONGROOM_PASSPHRASE="correct horse battery staple")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "--store", str(store_dir),
                             "backup-image", str(slow_source.path), "--no-daemon"], env=env,
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for(lambda: slow_source.fed >= 2 * MiB, what="the job to read")
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == code, err
    assert list((store_dir / "locks").iterdir()) == []  # the lock was given back
    assert not list(store_dir.rglob(".tmp-*"))  # no half-written pack
    assert json.loads(store_cli("--json", "snapshots").out) == []


def test_a_daemons_jobs_read_the_settings_as_they_are_now(tmp_path: Path) -> None:
    from engine.daemon.protocol import JobContext, env_fingerprint
    from engine.daemon.server import Daemon
    from engine.settings import Settings, load_settings, save_settings

    save_settings(Settings(buckets={"fr-par": "first-bucket"}))
    daemon = Daemon(daemon_paths())
    context = JobContext(str(tmp_path / "store"), None, "pw", env_fingerprint())
    assert daemon._session(context).bucket_for("fr-par-1") == "first-bucket"
    save_settings(Settings(buckets={"fr-par": "second-bucket"}))  # the app's settings screen
    assert daemon._session(context).bucket_for("fr-par-1") == "second-bucket"
    assert load_settings().buckets == {"fr-par": "second-bucket"}
