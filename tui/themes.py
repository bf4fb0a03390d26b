"""Themes are data: TOML files in ``themes/`` and in the user's config dir, turned into
Textual :class:`Theme` objects. A broken file never stops the app: it is skipped and reported.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs
from textual.color import Color, ColorParseError
from textual.theme import Theme

from themes import THEMES_DIR

DEFAULT_DARK = "strongroom-dark"
ANSI_THEME = "strongroom-ansi"

# App-specific variables every theme may set; these are the defaults when one does not.
VARIABLE_DEFAULTS = {
    "sr-ok": "ansi_green",
    "sr-warn": "ansi_yellow",
    "sr-error": "ansi_red",
    "sr-running": "ansi_cyan",
    "sr-muted": "ansi_bright_black",
    "sr-marked": "ansi_magenta",
}

_COLOUR_KEYS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground",
                "background", "surface", "panel", "boost")


@dataclass
class ThemeSet:
    themes: dict[str, Theme] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def user_themes_dir() -> Path:
    return Path(platformdirs.user_config_dir("strongroom")) / "themes"


def _check_colour(value: str, where: str) -> str:
    if value.startswith("ansi_"):
        return value
    try:
        Color.parse(value)
    except ColorParseError:
        raise ValueError(f"{where}: {value!r} is not a colour") from None
    return value


def theme_from_data(data: dict, source: str) -> Theme:
    """Build a Theme from a parsed TOML table; ValueError with a one-line reason if invalid."""
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{source}: missing 'name'")
    if "primary" not in data:
        raise ValueError(f"{source}: missing 'primary'")
    kwargs: dict = {}
    for key in _COLOUR_KEYS:
        if key in data:
            kwargs[key] = _check_colour(str(data[key]), f"{source}: {key}")
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ValueError(f"{source}: [variables] must be a table")
    for key, value in variables.items():
        _check_colour(str(value), f"{source}: variables.{key}")
    return Theme(name=name.strip(), dark=bool(data.get("dark", True)),
                 ansi=bool(data.get("ansi", False)),
                 luminosity_spread=float(data.get("luminosity_spread", 0.15)),
                 text_alpha=float(data.get("text_alpha", 0.95)),
                 variables={str(k): str(v) for k, v in variables.items()}, **kwargs)


def load_theme_file(path: Path) -> Theme:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path.name}: not valid TOML ({exc})") from None
    return theme_from_data(data, path.name)


def load_themes(extra_dirs: list[Path] | None = None) -> ThemeSet:
    """Our themes, then the user's (which may override ours by name)."""
    result = ThemeSet()
    dirs = [THEMES_DIR, *(extra_dirs if extra_dirs is not None else [user_themes_dir()])]
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ValueError as exc:
                result.problems.append(str(exc))
                continue
            result.themes[theme.name] = theme
    return result


def few_colours() -> bool:
    """True under NO_COLOR or on a terminal that announces only 16 colours."""
    if os.environ.get("NO_COLOR") is not None:
        return True
    if os.environ.get("COLORTERM", "").lower() in ("truecolor", "24bit"):
        return False
    term = os.environ.get("TERM", "")
    return bool(term) and "256color" not in term and term not in ("xterm-kitty", "xterm-direct")


def default_theme_name() -> str:
    return ANSI_THEME if few_colours() else DEFAULT_DARK
