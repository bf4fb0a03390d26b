"""The detail pane: facts about what the tree has selected, and that volume's backups."""
from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.widgets import Static

from tui.format import human_bytes, human_duration, human_gb, short_time, volume_status

ENV_KEYS = ("environment", "env")
CLASS_KEYS = ("data_class", "data-class", "dataclass", "class")


def tag_value(tags: Any, keys: tuple[str, ...]) -> str:
    """Scaleway tags are plain strings; we read 'key=value' or 'key:value'."""
    if isinstance(tags, dict):
        for key in keys:
            if key in tags:
                return str(tags[key])
        return ""
    for tag in tags or []:
        for sep in ("=", ":"):
            key, found, value = str(tag).partition(sep)
            if found and key.strip().lower() in keys:
                return value.strip()
    return ""


def volume_backups(snapshots: list[Any] | None, volume_id: str) -> list[Any]:
    return [s for s in (snapshots or []) if (getattr(s, "source", None) or {})
            .get("volume_id") == volume_id]


def _facts(rows: list[tuple[str, str | Content]]) -> Content:
    width = max(len(k) for k, _ in rows)
    lines = [Content.assemble((f"{k:<{width}}  ", "$text-muted"), v if isinstance(v, Content)
                              else Content(v)) for k, v in rows]
    return Content("\n").join(lines)


def volume_facts(vol: Any, snapshots: list[Any] | None, store_message: str = "",
                 project_name: str = "") -> Content:
    tags = getattr(vol, "tags", []) or []
    rows: list[tuple[str, str | Content]] = [
        ("volume", str(vol.name)),
        ("id", str(vol.id)),
        ("status", volume_status(str(getattr(vol, "status", "")))),
        ("zone", str(vol.zone)),
        ("project", project_name or str(getattr(vol, "project_id", ""))),
        ("size", human_gb(getattr(vol, "size", 0))),
        ("type", f"{getattr(vol, 'type', '')} · {getattr(vol, 'perf_iops', '') or '–'} IOPS"),
        ("server", str(getattr(vol, "server", None) or "not attached")),
        ("environment", tag_value(tags, ENV_KEYS) or "–"),
        ("data class", tag_value(tags, CLASS_KEYS) or "–"),
        ("tags", ", ".join(str(t) for t in tags) or "–"),
    ]
    if getattr(vol, "csi", False):
        rows.append(("kubernetes", "CSI volume"))
    if not getattr(vol, "backupable", True):
        rows.append(("backup", Content.assemble(("⚠ not possible: ", "$sr-warn"),
                                                str(getattr(vol, "reason", "") or ""))))
    parts = [_facts(rows), Content("")]
    if store_message:
        parts.append(Content.assemble(("store: ", "bold"), store_message))
    elif snapshots is None:
        parts.append(Content("backups: loading…"))
    else:
        backups = volume_backups(snapshots, vol.id)
        parts.append(Content.assemble((f"backups in the store: {len(backups)}", "bold")))
        for snap in reversed(backups[-8:]):
            verified = "✔ verified" if getattr(snap, "last_verified", None) else "· unverified"
            parts.append(Content(f" {snap.id[:8]} {short_time(snap.time)} "
                                 f"+{human_bytes(snap.stored_bytes)} {verified}"))
        if backups:
            parts.append(Content("  r restores one"))
    return Content("\n").join(parts)


def snapshot_facts(snap: Any) -> Content:
    src = getattr(snap, "source", None) or {}
    tags = getattr(snap, "tags", None) or {}
    rows: list[tuple[str, str | Content]] = [
        ("snapshot", str(snap.id)),
        ("time", short_time(snap.time) + " UTC"),
        ("name", str(snap.name or "–")),
        ("volume", f"{src.get('volume_name', '–')} ({src.get('volume_id', '–')})"),
        ("project", str(src.get("project_id", "–"))),
        ("zone", str(src.get("zone", "–"))),
        ("size", human_bytes(snap.bytes)),
        ("new bytes", human_bytes(snap.stored_bytes)),
        ("duration", human_duration(snap.seconds)),
        ("IOPS", str(src.get("perf_iops", "–"))),
        ("environment", str(src.get("environment") or "–")),
        ("data class", str(src.get("data_class") or "–")),
        ("verified", short_time(snap.last_verified) if snap.last_verified else "never"),
        ("tags", ", ".join(f"{k}={v}" for k, v in tags.items()) or "–"),
    ]
    return _facts(rows)


class DetailPane(Static):
    """Shows Content built above; every value from outside is plain text, never markup."""

    def show_text(self, text: str) -> None:
        self.update(Content(text))
