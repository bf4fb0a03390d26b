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
