"""End to end in a real terminal: `strongroom demo` in tmux at 80x24, keys only.

Backs up a volume of the demo sandbox and restores it through the wizard, reading the screen
with `tmux capture-pane` as a person would.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    def __init__(self, command: str, width: int = 80, height: int = 24) -> None:
        self.socket = f"strongroom-e2e-{os.getpid()}"
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

    def alive(self) -> bool:
        return subprocess.run(["tmux", "-L", self.socket, "has-session", "-t", self.session],
                              capture_output=True).returncode == 0

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal():  # noqa: ANN201
    made: list[Terminal] = []

    def start(command: str) -> Terminal:
        term = Terminal(command)
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
    term.keys("Down", "Enter")
    term.wait(r"◇ fr-par")
    term.keys("Down", "Enter")
    screen = term.wait(r"○ \S+")
    term.keys("Down")
    screen = term.wait(r"backups in the store: 0")
    term.keys("b")
    term.wait(r"Back up 1 volume\?")
    term.keys("y")
    term.wait(r"✔ done\s+backup", timeout=180)

    term.keys("s")  # the store now holds that backup
    term.wait(r"Snapshots in the store")
    term.wait(r"─ 1 · sort time")
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
