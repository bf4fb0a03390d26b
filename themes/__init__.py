"""Colour themes as data files (``*.toml`` next to this file), loaded by ``tui.themes``."""
from pathlib import Path

THEMES_DIR = Path(__file__).resolve().parent
