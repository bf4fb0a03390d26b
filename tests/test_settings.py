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
    in values and in bucket keys (the file is written by tomlkit, read by tomllib)."""
    nasty = 'a "quoted" C:\\path\\ with\nnew\r\nlines,\ttabs, \x00\x1b\x7f, été, 東京, 🙂 \'\''
    s = Settings(store_url=nasty, buckets={nasty: nasty, "fr-par": "plain"},
                 environment="\\", data_class='"', keep_temporaries=True, theme="\n")
    path = save_settings(s, tmp_path / "settings.toml")
    assert load_settings(path) == s
    assert not list(tmp_path.glob(".settings-*"))  # the temp file was renamed, not left
    save_settings(Settings(), path)  # written over atomically, and read back
    assert load_settings(path) == Settings()


def test_saving_keeps_the_files_comments_order_and_unknown_keys(tmp_path: Path) -> None:
    """The app saving a theme must not eat an operator's notes in [policies] (nor a key a newer
    version wrote): the file is updated in place."""
    path = tmp_path / "settings.toml"
    written = ('# Strongroom, ops team\n'
               'store_url = "s3://backups/prod"  # the Paris bucket\n'
               'from_a_newer_version = 3\n'
               '\n'
               '[buckets]\n'
               'fr-par = "staging-par"  # shared with CI\n'
               'nl-ams = "staging-ams"\n'
               '\n'
               '[policies.nightly]\n'
               '# a week of nightlies, then a month of weeklies\n'
               'schedule = "daily"\n'
               'keep = { daily = 7, weekly = 4 }\n')
    path.write_text(written)
    settings = load_settings(path)
    settings.theme = "strongroom-light"
    settings.buckets.pop("nl-ams")
    save_settings(settings, path)
    text = path.read_text()
    for kept in ("# Strongroom, ops team", "# the Paris bucket", "from_a_newer_version = 3",
                 "# shared with CI", "# a week of nightlies, then a month of weeklies",
                 'keep = { daily = 7, weekly = 4 }'):
        assert kept in text
    assert "nl-ams" not in text
    again = load_settings(path)
    assert again.theme == "strongroom-light" and again.buckets == {"fr-par": "staging-par"}
    assert again.policies == settings.policies
    assert text.index("store_url") < text.index("theme") < text.index("[buckets]")
