"""End to end in a real terminal: the app in tmux at 80x24, keys only, reading the screen with
`tmux capture-pane` as a person would.

- `strongroom demo`: filters the inventory to a volume, backs it up, opens its backups with
  enter and restores one through the wizard.
- `strongroom` against the test sandbox: a backup outlives the tmux session that started it
  (killed: SIGHUP, as a dropped SSH connection), and a new app attached later shows it end.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import running
from tests.fixtures.store import PASSPHRASE, CliResult

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    def __init__(self, command: str, width: int = 80, height: int = 24, name: str = "") -> None:
        # each terminal its own tmux server: a killed session ends its server with it
        self.socket = f"strongroom-e2e-{os.getpid()}{name}"
        self.session = "demo"
        self._tmux("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height),
                   command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True,
                              capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", self.session, *(["-l"] if literal else []), *keys)
        time.sleep(0.15)

    def wait(self, pattern: str, timeout: float = 60.0) -> str:
        """The screen once it matches ``pattern``. Deadlines are generous (the suite shares a
        loaded machine); a screen that matches returns at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if re.search(pattern, text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} never showed up; the screen was:\n{self.screen()}")

    def pane_pid(self) -> int:
        """The pane's first process (the shell that runs the command)."""
        return int(self._tmux("display-message", "-p", "-t", self.session, "#{pane_pid}"))

    def kill_session(self) -> None:
        """What a dropped SSH connection does to tmux's clients: the pane gets SIGHUP."""
        self._tmux("kill-session", "-t", self.session)

    def alive(self) -> bool:
        return subprocess.run(["tmux", "-L", self.socket, "has-session", "-t", self.session],
                              capture_output=True).returncode == 0

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal():  # noqa: ANN201
    made: list[Terminal] = []

    def start(command: str) -> Terminal:
        term = Terminal(command, name=f"-{len(made)}" if made else "")
        made.append(term)
        return term

    yield start
    for term in made:
        term.close()


def test_demo_backup_and_restore_in_tmux(terminal) -> None:  # noqa: ANN001
    # the demo exits when the app does; "; sleep" keeps the pane to read a crash if any (longer
    # than any wait, so a failing wait still shows the screen; the fixture ends the server)
    term = terminal(f"cd {ROOT} && {sys.executable} -m cli demo; "
                    "echo EXITED-$?; sleep 600")
    term.wait(r"Inventory", timeout=120)
    term.wait(r"▣ data-platform")
    # find the volume as an operator with hundreds would: filter, not browse
    term.keys("/")
    term.keys("pvc-", literal=True)
    term.wait(r"1 of \d+ match")
    term.keys("Enter")  # the filter stays; the tree has the keys, its cursor on the match
    term.wait(r"○ pvc-\S+\s+✖ never")  # its state at a glance: never backed up
    term.keys("b")
    term.wait(r"Back up 1 volume\?")
    term.keys("y")
    term.wait(r"✔ done\s+backup", timeout=180)
    term.wait(r"○ pvc-\S+\s+✔ ok \d+[smh]")  # its state, once the job ended

    term.keys("Enter")  # the volume's backups: the store screen, filtered to it
    term.wait(r"Backups of pvc-")
    term.wait(r"─ 1 of 1 · sort time")
    term.keys("r")
    term.wait(r"Where should the new volume live")
    term.wait(r"data-platform \(")  # the projects are loaded (and the original chosen)
    term.keys("C-n")
    term.wait(r"Name of the new volume")
    term.keys("Enter")
    term.wait(r"Size in GB")
    term.keys("Enter")
    term.wait(r"Performance class")
    term.keys("C-n")
    screen = term.wait(r"✔ ok\s+credentials")
    name = re.search(r"new volume (\S+-restored)", screen).group(1)
    term.keys(name, literal=True)
    term.keys("Enter")
    screen = term.wait(r"✔ restored", timeout=180)
    new_id = re.search(r"id ([0-9a-f-]{36})", screen.replace("\n", " ").replace("│", ""))
    term.keys("Enter")
    screen = term.wait(r"Details")
    term.wait(re.escape(name[:24]))
    if new_id:
        term.wait(re.escape(new_id.group(1)[:20]))
    term.keys("C-q")
    term.wait(r"EXITED-0")


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_backup_outlives_the_tmux_session_that_started_it(
        terminal, sandbox_faults, scw_env, store_dir: Path,  # noqa: ANN001
        store_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch) -> None:
    """The app starts a backup; its tmux session is killed; a new app in a new session shows
    the job, which completes; `strongroom jobs wait ID` says 0."""
    monkeypatch.setenv("STRONGROOM_PASSPHRASE", PASSPHRASE)  # the tmux servers inherit it
    app = (f"cd {ROOT} && {sys.executable} -m cli --store {store_dir}; "
           "echo EXITED-$?; sleep 600")
    term = terminal(app)
    term.wait(r"daemon: idle")  # the app started the daemon and follows it
    term.wait(r"▣ \S+")
    term.keys("Down", "Enter")
    term.wait(r"◇ fr-par")
    term.keys("Down", "Enter")
    term.wait(r"[○●] \S+")
    term.keys("Down")
    term.wait(r"✖ never — no backup")
    term.keys("b")
    term.wait(r"Back up 1 volume\?")
    # every Scaleway call now takes 1.5 s: the backup is still running when the session dies
    sandbox_faults.faults(latency_ms=1500)
    term.keys("y")
    term.wait(r"▶ running\s+backup")
    term.wait(r"daemon: 1 running")
    shell = term.pane_pid()
    app_pids = _children(shell)
    assert app_pids, "the app is not running under the pane's shell"

    term.kill_session()
    deadline = time.monotonic() + 20
    while any(running(pid) for pid in [shell, *app_pids]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(pid) for pid in [shell, *app_pids]), "SIGHUP left the app alive"
    (job,) = json.loads(store_cli("--json", "jobs").out)
    assert (job["kind"], job["state"]) == ("backup", "running"), job

    later = terminal(app)  # a new SSH session, a new app
    later.wait(r"daemon: 1 running")
    later.wait(r"▶ running\s+" + re.escape(job["title"]))
    sandbox_faults.faults()  # the calls are quick again: the job ends while the app watches
    later.wait(r"✔ done\s+" + re.escape(job["title"]), timeout=60)
    later.wait(r"daemon: idle")
    assert store_cli("jobs", "wait", job["id"][:8]).code == 0
    (job,) = json.loads(store_cli("--json", "jobs").out)
    assert job["state"] == "done" and job["result"]["stored_bytes"] > 0
    later.keys("C-q")  # nothing runs: it quits at once, and its stream's thread ends with it
    later.wait(r"EXITED-0", timeout=20)
