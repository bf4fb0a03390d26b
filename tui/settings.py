"""The settings the app shows: profile, store, staging bucket per region, theme.

Store, buckets and theme live in Strongroom's settings file
(``engine.settings.load_settings/save_settings``), so the CLI and the app agree. The
Scaleway profile is the app's own preference (the connector leaves profiles to Scaleway's
config and ``SCW_PROFILE``), kept in ``tui.toml`` next to it.
"""
from __future__ import annotations

import os
import tempfile
import tomllib

import tomlkit
from dataclasses import dataclass, field
from pathlib import Path

from engine import settings as engine_settings


@dataclass
class AppSettings:
    profile: str = ""
    store: str = ""
    theme: str = ""
    buckets: dict[str, str] = field(default_factory=dict)


def config_path() -> Path:
    return engine_settings.settings_path()


def tui_path() -> Path:
    return config_path().with_name("tui.toml")


def load() -> AppSettings:
    try:
        base = engine_settings.load_settings()
    except Exception:  # a broken file must not keep the app from opening
        base = engine_settings.Settings()
    profile = ""
    try:
        profile = str(tomllib.loads(tui_path().read_text(encoding="utf-8")).get("profile", ""))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        pass
    return AppSettings(profile=profile, store=base.store_url, theme=base.theme,
                       buckets=dict(base.buckets))


def save(settings: AppSettings) -> Path:
    """Both files atomically (temp file then rename); fields we do not show are kept."""
    try:
        base = engine_settings.load_settings()
    except Exception:
        base = engine_settings.Settings()
    base.store_url, base.theme = settings.store, settings.theme
    base.buckets = {r: b for r, b in settings.buckets.items() if b}
    path = engine_settings.save_settings(base)
    target = tui_path()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tui-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("# the terminal app's own preferences\n")
            f.write(tomlkit.dumps({"profile": settings.profile}))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_theme(theme: str) -> Path:
    """Only the theme (the palette's choice): the file's other fields stay as they are."""
    try:
        base = engine_settings.load_settings()
    except Exception:
        base = engine_settings.Settings()
    base.theme = theme
    return engine_settings.save_settings(base)
