"""The app's settings file: profile, store, staging bucket per region, theme.

Uses ``engine.scaleway.config.load_settings/save_settings`` when the connector provides them;
until then (and as a fallback) a small TOML file in the platform config dir.
"""
from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from tui.backend import REGIONS


@dataclass
class AppSettings:
    profile: str = ""
    store: str = ""
    theme: str = ""
    buckets: dict[str, str] = field(default_factory=dict)


def config_path() -> Path:
    return Path(platformdirs.user_config_dir("strongroom")) / "config.toml"


def load(path: Path | None = None) -> AppSettings:
    path = path or config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AppSettings()
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return AppSettings()
    buckets = data.get("buckets", {})
    return AppSettings(profile=str(data.get("profile", "")), store=str(data.get("store", "")),
                       theme=str(data.get("theme", "")),
                       buckets={str(k): str(v) for k, v in buckets.items()
                                if isinstance(v, str)} if isinstance(buckets, dict) else {})


def _toml_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def dumps(settings: AppSettings) -> str:
    lines = ["# Strongroom settings (written by the app; safe to edit)"]
    for key in ("profile", "store", "theme"):
        value = getattr(settings, key)
        if value:
            lines.append(f"{key} = {_toml_str(value)}")
    buckets = {r: b for r, b in settings.buckets.items() if b}
    if buckets:
        lines += ["", "[buckets]"]
        for region in sorted(buckets, key=lambda r: (r not in REGIONS, r)):
            lines.append(f"{_toml_str(region)} = {_toml_str(buckets[region])}")
    return "\n".join(lines) + "\n"


def save(settings: AppSettings, path: Path | None = None) -> Path:
    """Atomic write (temp file then rename), so a crash never leaves half a config."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dumps(settings))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
