"""Durations of `every`, `verify` and `grace`: whole numbers with units w, d, h, min, s.

Not restic's syntax (where ``m`` is months): here a schedule's period is a clock duration,
and ``m`` alone is refused rather than guessed at.
"""
from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"\s*([0-9]+)\s*(w|d|h|min|s)\s*")
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1),
          "min": timedelta(minutes=1), "s": timedelta(seconds=1)}
HELP = "use whole numbers with units w, d, h, min or s, as in 24h or 1d12h"


def parse_period(text: str) -> timedelta:
    """``text`` as a timedelta; ValueError (with what to write instead) when it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"bad duration {text!r}: {HELP}")
    total, pos = timedelta(), 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise ValueError(f"bad duration {text!r}: {HELP}")
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if total <= timedelta():
        raise ValueError(f"bad duration {text!r}: it must be longer than zero")
    return total


def show_period(period: timedelta) -> str:
    """The shortest form that ``parse_period`` reads back ("1d12h", "30min")."""
    seconds = int(period.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
