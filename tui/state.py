"""What the app remembers between runs that is neither a setting nor a secret (the last folder
files were restored into). It lives in the user's state folder (``~/.local/state/strongroom``,
0700), in a 0600 file of its own: never in the settings file, which people copy between
machines and into dotfile repositories."""
from __future__ import annotations

import contextlib
import os
import tempfile
import tomllib
from pathlib import Path

import platformdirs
import tomlkit

from engine.settings import APP_NAME

RESTORE_FOLDER = "restore_folder"


def state_path() -> Path:
    return Path(platformdirs.user_state_dir(APP_NAME)) / "tui-state.toml"


def load() -> dict[str, str]:
    """What was remembered; nothing when the file is missing or unreadable (never an error)."""
    try:
        data = tomllib.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)}


def remember(key: str, value: str) -> None:
    """Keep ``key = value`` (atomically: temp file then rename). Failing to remember is not
    worth an error in the middle of a restore: it is given up silently."""
    path = state_path()
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = load() | {key: value}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tui-state-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp makes it 0600
                fh.write("# what the terminal app remembers between runs\n")
                fh.write(tomlkit.dumps(data))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
