"""CLI commands of the store area (filled in by its issue)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's sub-commands to the parser."""
