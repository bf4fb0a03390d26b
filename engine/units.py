"""Numbers as people read them, the same in every driver (the command line, the app)."""
from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(n: float | int | None) -> str:
    """Binary units, one decimal above bytes: ``0 B``, ``1023 B``, ``1.5 KiB``, ``2.0 TiB``;
    ``–`` for an unknown size (None). Never larger than TiB: ``2048.0 TiB``."""
    if n is None:
        return "–"
    n = float(n)
    for unit in UNITS[:-1]:
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} {UNITS[-1]}"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 file``, ``2 files``, ``0 files``; ``1 entry``, ``3 entries``; ``many`` for an
    irregular plural. The one way every driver counts things."""
    if count == 1:
        return f"{count} {word}"
    if many is None:
        many = word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" \
            else word + "s"
    return f"{count} {many}"


def utc_time(text: str) -> str:
    """An ISO 8601 time given by a person (``--time``) as manifests record it: UTC with
    microseconds and ``Z``. A time without an offset is taken as UTC; a bare date as its
    midnight UTC. Raises UsageError for anything else."""
    from datetime import datetime, timezone

    from engine.errors import UsageError

    raw = text.strip()
    try:
        when = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in "zZ" and raw else raw)
    except ValueError:
        raise UsageError(f"bad time {text!r}: give an ISO 8601 time such as "
                         "2026-11-30T10:00:00Z (UTC unless it has an offset)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def percent(text: str, what: str = "percentage") -> float:
    """A percentage given by a person: "5", "5%", "2.5", or "unlimited" (100)."""
    from engine.errors import UsageError

    raw = str(text).strip().removesuffix("%").strip()
    if raw == "unlimited":
        return 100.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise UsageError(f"bad {what} {text!r}: give a percentage from 0 to 100 (such as 5 or "
                         "5%), or 'unlimited'")
    return value
