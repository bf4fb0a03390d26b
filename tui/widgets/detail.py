"""The detail pane: facts about what the tree has selected, and that volume's backups."""
from __future__ import annotations


from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.content import Content
from textual.widgets import Static

from engine.protection import GONE, Protection
from engine.scaleway.inventory import VolumeInfo
from engine.store import SnapshotInfo
from tui.format import human_bytes, human_duration, human_gb, short_time
from tui.policystate import PolicyFacts, policy_terms

ENV_KEYS = ("environment", "env")
CLASS_KEYS = ("data_class", "data-class", "dataclass", "class")


def tag_value(tags: list[str], keys: tuple[str, ...]) -> str:
    """Scaleway tags are plain strings; we read 'key=value' or 'key:value'."""
    for tag in tags:
        for sep in ("=", ":"):
            key, found, value = str(tag).partition(sep)
            if found and key.strip().lower() in keys:
                return value.strip()
    return ""


def volume_backups(snapshots: list[SnapshotInfo] | None, volume_id: str) -> list[SnapshotInfo]:
    return [s for s in (snapshots or []) if s.source.get("volume_id") == volume_id]


Palette = dict[str, Style]
STATUS_STYLE = {"available": "sr-ok", "in_use": "sr-running", "error": "sr-error"}
STATUS_GLYPH = {"available": "●", "in_use": "●", "error": "✖", "creating": "◌", GONE: "⊗"}


def palette(variables: dict[str, str]) -> Palette:
    """Rich styles from the theme's variables (ANSI names mapped to Rich's)."""
    out: Palette = {}
    for name in ("sr-ok", "sr-warn", "sr-error", "sr-running", "sr-muted", "text-muted"):
        value = variables.get(name, "")
        colour = value[5:] if value.startswith("ansi_") else value[:7]
        try:
            out[name] = Style(color=colour or None)
        except Exception:
            out[name] = Style()
    return out


def _facts(rows: list[tuple[str, str | Text]], pal: Palette) -> Table:
    """Label and value columns; a long value folds inside its own column."""
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True, style=pal.get("sr-muted", Style()))
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value if isinstance(value, Text) else Text(value))
    return table


def _status(status: str, pal: Palette) -> Text:
    glyph = STATUS_GLYPH.get(status, "○")
    return Text(f"{glyph} {status.replace('_', ' ')}",
                style=pal.get(STATUS_STYLE.get(status, "sr-muted"), Style()))


BARS = "▁▂▃▄▅▆▇█"
SPARK_BACKUPS = 30  # the newest backups a sparkline shows


def sparkline(values: list[int]) -> str:
    """One block per value, as tall as its share of the largest (an empty backup: the
    lowest block, so each backup still shows)."""
    top = max(values, default=0)
    if top <= 0:
        return BARS[0] * len(values)
    return "".join(BARS[min(len(BARS) - 1, v * len(BARS) // (top + 1))] for v in values)


def _policy_rows(vol: VolumeInfo, facts: PolicyFacts) -> list[tuple[str, str | Text]]:
    status = facts.statuses.get(vol.id)
    if status is None or status.policy is None:
        return [("policy", "none matches it")] if status is not None else []
    policy = next((p for p in facts.policies if p.name == status.policy), None)
    terms = ""
    if policy is not None:
        every, keep, verify = policy_terms(policy)
        terms = f" · every {every} · keep {keep} · verify {verify}"
    rows: list[tuple[str, str | Text]] = [("policy", f"{status.policy}{terms}")]
    reasons = facts.reasons.get(vol.id, ())
    if reasons:
        rows.append(("matched", "; ".join(reasons)))
    verified = short_time(status.last_verified) if status.last_verified else "never"
    rows.append(("verified", verified + (" · a check is due" if status.verify_due else "")))
    return rows


def volume_facts(vol: VolumeInfo, snapshots: list[SnapshotInfo] | None,
                 store_message: str = "", project_name: str = "",
                 pal: Palette | None = None,
                 protection: Protection | None = None,
                 policies: PolicyFacts | None = None) -> RenderableType:
    from tui.widgets.volumes import state_text

    pal = pal or {}
    tags = vol.tags
    rows: list[tuple[str, str | Text]] = [
        ("volume", str(vol.name)),
        ("id", str(vol.id)),
        ("status", _status(str(vol.status), pal)),
        ("zone", str(vol.zone)),
        ("project", project_name or str(vol.project_id)),
        ("size", human_gb(vol.size)),
        ("type", f"{vol.type} · {vol.perf_iops or '–'} IOPS"),
        ("server", str(vol.server or "not attached")),
        ("environment", tag_value(tags, ENV_KEYS) or "–"),
        ("data class", tag_value(tags, CLASS_KEYS) or "–"),
        ("tags", ", ".join(str(t) for t in tags) or "–"),
    ]
    if vol.csi:
        rows.append(("kubernetes", "CSI volume"))
    if protection is not None:  # the state, and why: one line a person reads
        state = state_text(protection, pal)
        state.append(f" — {protection.reason}")
        rows.append(("backup", state))
        if policies is not None and policies.active:
            rows += _policy_rows(vol, policies)
    elif not vol.backupable:
        rows.append(("backup", Text.assemble(("⚠ not possible: ", pal.get("sr-warn", "")),
                                             str(vol.reason))))
    parts: list[RenderableType] = [_facts(rows, pal), Text("")]
    if store_message:
        parts.append(Text.assemble(("store: ", "bold"), store_message))
    elif snapshots is None:
        parts.append(Text("backups: loading…"))
    else:
        backups = volume_backups(snapshots, vol.id)
        parts.append(Text(f"backups in the store: {len(backups)}", style="bold"))
        if backups:  # how much each backup added, oldest first: a jump shows at a glance
            added = [s.stored_bytes for s in sorted(backups, key=lambda s: s.time)]
            added = added[-SPARK_BACKUPS:]
            parts.append(Text.assemble(("new bytes ", pal.get("sr-muted", "")),
                                       (sparkline(added), pal.get("sr-running", "")),
                                       f" max +{human_bytes(max(added))}"))
        table = Table.grid(padding=(0, 1))
        for snap in reversed(backups[-8:]):
            verified = "✔ verified" if snap.last_verified else "· unverified"
            table.add_row(snap.id[:8], short_time(snap.time),
                          Text(f"+{human_bytes(snap.stored_bytes)}"), verified)
        if backups:
            parts += [table, Text("enter lists them all (r restores, e explores, d diffs)",
                                  style=pal.get("sr-muted", ""))]
    return Group(*parts)


def snapshot_facts(snap: SnapshotInfo, pal: Palette | None = None) -> RenderableType:
    pal = pal or {}
    src, tags = snap.source, snap.tags
    rows: list[tuple[str, str | Text]] = [
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
    return _facts(rows, pal)


class DetailPane(Static):
    """Shows what is built above; every value from outside is plain text, never markup."""

    def palette(self) -> Palette:
        return palette(self.app.theme_variables)

    def show_text(self, text: str) -> None:
        self.update(Content(text))
