"""Small text helpers shared by the screens: sizes, durations, bars and status words.

Status is always a glyph AND a word (never colour alone); the colour, when any, comes from a
theme variable through a Content style such as ``$sr-ok``.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

import re

from textual.content import Content

from engine.jobs import CANCELLED, DONE, FAILED, INTERRUPTED, PENDING, RUNNING
from engine.units import human_bytes  # the one definition, shared with the CLI

JOB_STATUS: dict[str, tuple[str, str, str]] = {
    # state: (glyph, word, theme variable)
    PENDING: ("◌", "waiting", "$sr-muted"),
    RUNNING: ("▶", "running", "$sr-running"),
    DONE: ("✔", "done", "$sr-ok"),
    FAILED: ("✖", "failed", "$sr-error"),
    CANCELLED: ("■", "cancelled", "$sr-warn"),
    INTERRUPTED: ("↯", "interrupted", "$sr-warn"),  # its daemon died while it ran
}

VOLUME_STATUS: dict[str, tuple[str, str]] = {
    "available": ("●", "$sr-ok"),
    "in_use": ("●", "$sr-running"),
    "creating": ("◌", "$sr-muted"),
    "snapshotting": ("◐", "$sr-running"),
    "error": ("✖", "$sr-error"),
    "locked": ("■", "$sr-warn"),
}



def human_gb(n: int | None) -> str:
    """Volume sizes as Scaleway shows them: decimal GB."""
    if not n:
        return "–"
    return f"{n / 1e9:g} GB"


def human_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0 or math.isnan(seconds):
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def human_rate(rate: float) -> str:
    return f"{human_bytes(rate)}/s" if rate > 0 else "–"


def short_time(iso: str | None) -> str:
    """'2026-11-24T01:02:03Z' → '2026-11-24 01:02' (UTC, as stored)."""
    if not iso:
        return "never"
    try:
        t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def bar(fraction: float, width: int) -> str:
    """A text progress bar; plain characters so it survives any terminal and NO_COLOR."""
    fraction = min(max(fraction, 0.0), 1.0)
    full = int(fraction * width)
    return "█" * full + "░" * (width - full)


def job_status(state: str) -> Content:
    glyph, word, style = JOB_STATUS.get(state, ("?", state, ""))
    return Content.assemble((f"{glyph} {word}", style))


def volume_status(status: str) -> Content:
    glyph, style = VOLUME_STATUS.get(status, ("○", "$sr-muted"))
    return Content.assemble((f"{glyph} {status.replace('_', ' ')}", style))


DEDUP_SHOWN_MAX = 100  # past this, the exact ratio says nothing more (2535.0×)


def dedup_ratio(bytes_read: int, stored: int | None) -> str:
    """Bytes read per byte newly stored: ``2.4×``, ``37×``; ``>100×`` past a hundred and when
    nothing new was stored (an unchanged volume: the ratio is infinite, ``∞×`` read as a bug);
    ``–`` while unknown."""
    if not bytes_read or stored is None:
        return "–"
    if stored <= 0 or bytes_read / stored > DEDUP_SHOWN_MAX:
        return f">{DEDUP_SHOWN_MAX}×"
    ratio = bytes_read / stored
    return f"{ratio:.1f}×" if ratio < 10 else f"{ratio:.0f}×"


# The engine's messages name the command line's flags (they are the CLI's fix); in the app the
# same fix is a field, a step or the settings screen. Phrases first, then lone flags.
_APP_TERMS: tuple[tuple[str, str], ...] = (
    (r"choose another name with --name, or pass --rename-on-clash to restore as (\S+)",
     r"choose another name in the Name step, such as \1"),
    (r"with --name\b", "in the Name step"),
    (r"pass --project\b", "choose a project in the Target step"),
    (r"\(--bucket, or the settings\)", "(the staging bucket in settings, :settings)"),
    (r"choose another bucket with --bucket\b", "choose another staging bucket in settings "
                                                "(:settings)"),
    (r"choose another with --bucket\b", "choose another in settings (:settings)"),
    (r"(pass|with) --bucket\b", r"\1 the staging bucket in settings (:settings)"),
    (r"with --profile or SCW_PROFILE", "in settings (:settings) or with SCW_PROFILE"),
    (r"with --profile\b", "in settings (:settings)"),
    (r"point --store \(or STRONGROOM_STORE\) at", "set the store in settings (:settings) to"),
    (r"check --store \(or STRONGROOM_STORE\)", "check the store in settings (:settings)"),
    (r"--no-daemon \((STRONGROOM_NO_DAEMON=1)\)", r"\1"),
)


def in_app_terms(message: str) -> str:
    """An engine message as the app says it: fields, steps and settings instead of flags."""
    for pattern, replacement in _APP_TERMS:
        message = re.sub(pattern, replacement, message)
    return message
