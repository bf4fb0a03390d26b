"""Where the daemon lives: its socket in a private runtime folder, its journal and log in the
state folder. Nothing here is ever shared with another user."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from engine.errors import UsageError
from engine.settings import APP_NAME

SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with its NUL


@dataclass(frozen=True)
class DaemonPaths:
    runtime: Path  # 0700: the socket and the instance lock
    state: Path    # the journal and the log

    @property
    def socket(self) -> Path:
        return self.runtime / "daemon.sock"

    @property
    def lock(self) -> Path:
        return self.runtime / "daemon.lock"

    @property
    def journal(self) -> Path:
        return self.state / "jobs.sqlite"

    @property
    def log(self) -> Path:
        return self.state / "daemon.log"


def daemon_paths() -> DaemonPaths:
    """``$XDG_RUNTIME_DIR/strongroom`` (a per-user tmpfs on systemd machines), else a private
    folder under the state dir: never platformdirs' shared-/tmp fallback, which another user
    could create first."""
    state = Path(platformdirs.user_state_dir(APP_NAME))
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    runtime = Path(xdg) / APP_NAME if xdg else state / "run"
    paths = DaemonPaths(runtime, state)
    if len(os.fsencode(paths.socket)) > SOCKET_PATH_MAX:
        raise UsageError(f"the daemon's socket path {paths.socket} is too long for a Unix "
                         "socket: set XDG_RUNTIME_DIR to a shorter folder")
    return paths


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) or check that an existing one is ours and closed to others."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UsageError(f"{path} is not a folder of this user: remove it and try again")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path
