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
