"""Strongroom's own settings file chooses the store when neither --store nor STRONGROOM_STORE does."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.settings import Settings, load_settings, save_settings


def _init(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args, "init"], env=env,
                          capture_output=True, text=True, timeout=120)


def test_settings_store_url_is_the_default_store(tmp_path: Path) -> None:
    store = tmp_path / "from-settings"
    save_settings(Settings(store_url=str(store)))
    assert load_settings().store_url == str(store)
    env = {**os.environ, "STRONGROOM_PASSPHRASE": "correct horse",
           "STRONGROOM_KDF_MEMORY_KIB": "8192"}
    r = _init(env)
    assert r.returncode == 0, r.stderr
    assert (store / "config").exists() or any(store.iterdir())


def test_flag_and_variable_beat_the_settings(tmp_path: Path) -> None:
    save_settings(Settings(store_url=str(tmp_path / "from-settings")))
    env = {**os.environ, "STRONGROOM_PASSPHRASE": "correct horse",
           "STRONGROOM_KDF_MEMORY_KIB": "8192", "STRONGROOM_STORE": str(tmp_path / "from-env")}
    assert _init(env).returncode == 0
    assert _init(env, "--store", str(tmp_path / "from-flag")).returncode == 0
    assert (tmp_path / "from-env").is_dir() and (tmp_path / "from-flag").is_dir()
    assert not (tmp_path / "from-settings").exists()


def test_any_text_round_trips_through_the_settings_file(tmp_path: Path) -> None:
    """Quotes, backslashes, newlines, control characters and non-ASCII survive a save and a load,
    in values and in bucket keys (the file is written by tomli-w, read by tomllib)."""
    nasty = 'a "quoted" C:\\path\\ with\nnew\r\nlines,\ttabs, \x00\x1b\x7f, été, 東京, 🙂 \'\''
    s = Settings(store_url=nasty, buckets={nasty: nasty, "fr-par": "plain"},
                 environment="\\", data_class='"', keep_temporaries=True, theme="\n")
    path = save_settings(s, tmp_path / "settings.toml")
    assert load_settings(path) == s
    assert not list(tmp_path.glob(".settings-*"))  # the temp file was renamed, not left
    save_settings(Settings(), path)  # written over atomically, and read back
    assert load_settings(path) == Settings()
