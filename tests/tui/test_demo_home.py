"""`strongroom demo` is throwaway: with HOME and the XDG folders pointed at a temp folder,
nothing is written there (settings saved in the demo go to the demo's own folder, which is
gone when it quits), and quitting says what it still waits for."""
from __future__ import annotations

import hashlib
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


def tree(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file and folder under ``folder``: mtime and content digest."""
    out = {}
    for path in sorted(folder.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(folder))] = (path.stat().st_mtime_ns, digest)
    return out


class Tmux:
    def __init__(self, command: str, env: dict[str, str]) -> None:
        self.socket = f"strongroom-demo-home-{os.getpid()}"
        self._tmux("new-session", "-d", "-s", "demo", "-x", "200", "-y", "40",
                   "env " + " ".join(f"{k}={v}" for k, v in env.items()) + " " + command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True,
                              capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "demo")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "demo", *keys)
        time.sleep(0.15)

    def wait(self, pattern: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, text := self.screen()):
                return text
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} never showed up; the screen was:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def test_the_demo_writes_nothing_outside_its_own_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = home / ".config" / "strongroom"
    config.mkdir(parents=True)
    (config / "settings.toml").write_text('theme = "strongroom-light"\n\n[buckets]\n'
                                          'fr-par = "my-own-bucket"\n')
    before = tree(home)
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local/share"), "XDG_CACHE_HOME": str(home / ".cache"),
           "XDG_STATE_HOME": str(home / ".local/state"), "STRONGROOM_NO_DAEMON": "1"}
    term = Tmux(f"{sys.executable} -m cli demo; echo EXITED-$?; sleep 600", env)
    try:
        term.wait(r"data-platform")
        term.keys(":")
        term.keys("-l", "settings")
        term.keys("Enter")
        screen = term.wait(r"(/\S+/strongroom-demo-\S+)/store")
        demo_folder = Path(re.search(r"(/\S+/strongroom-demo-\S+)/store", screen).group(1))
        saved = demo_folder / "home" / "config" / "strongroom" / "settings.toml"
        assert "my-own-bucket" in saved.read_text()  # the user's settings, copied in
        term.keys("C-s")
        term.wait(r"saved to ")
        # saved there (the demo uses the sandbox's buckets), not in the user's file
        assert 'theme = "strongroom-light"' in saved.read_text()
        assert "my-own-bucket" not in saved.read_text()
        term.keys("C-q")
        screen = term.wait(r"EXITED-0", timeout=60)
        assert "stopping the sandbox" in screen
    finally:
        term.close()
    assert not demo_folder.exists()
    assert tree(home) == before


def test_ctrl_c_stops_the_sandbox_cleanly_and_keeps_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), XDG_DATA_HOME=str(home / "data"),
               XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               XDG_STATE_HOME=str(home / "state"))
    # its own process group, as a shell gives a foreground job: Ctrl-C signals all of it
    proc = subprocess.Popen([sys.executable, "-m", "cli", "sandbox", "--profile", "small"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()  # the export lines come once it serves
        assert first.startswith("export "), first + proc.stderr.read()
        state = ""
        while "# stop with Ctrl-C" not in (line := proc.stderr.readline()):
            state = line.split()[3] if line.startswith("# sandbox state:") else state
            assert line, "the sandbox ended early"
        os.killpg(proc.pid, 2)  # what the terminal sends on Ctrl-C
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    assert proc.returncode == 0, err
    assert err.strip().splitlines() == ["# sandbox stopped"], err
    assert state and not Path(state).exists()
    assert list(home.iterdir()) == []
