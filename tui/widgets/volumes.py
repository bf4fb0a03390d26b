"""Every volume the app knows, from the inventory and from the store, and how it is shown.

``InventoryModel`` holds what the inventory listed (level by level as the tree opens them, or
the whole organization at once) and what the store knows (``StoredVolume`` per volume id); it
gives each level's children, gone volumes included, and every volume as a ``VolumeRow``
(protection state and filter fields computed once per change, so filtering hundreds of volumes
is a loop over prepared strings).

``VolumeTable`` is the flat, sortable view of those rows.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message

from engine.protection import (DUE, GONE, NEVER, NO_POLICY, NOT_BACKUPABLE, OK, OVERDUE, STALE,
                               Protection, StoredVolume, gone_volumes, human_age,
                               protection_from_status, protection_of)
from engine.scaleway.inventory import ProjectInfo, VolumeInfo
from tui.format import human_gb
from tui.policystate import PolicyFacts
from tui.query import Fields, Query, matches
from tui.widgets.keys import KeyTable

NAME_WIDTH = 32  # pvc-<uuid> names are cut in the table; the filter and the details have them whole


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


FILTER_KEYS = ("volume", "project", "zone", "tag", "state", "type", "id", "policy")

# state → (glyph, word, theme variable): a glyph AND a word, never colour alone; the order is
# the table's state order (a policy's words among the backup-age ones)
STATE_LOOK: dict[str, tuple[str, str, str]] = {
    OK: ("✔", "ok", "sr-ok"),
    DUE: ("◷", "due", "sr-warn"),
    STALE: ("⚠", "stale", "sr-warn"),
    OVERDUE: ("✖", "overdue", "sr-error"),
    NEVER: ("✖", "never", "sr-error"),
    NO_POLICY: ("○", "no policy", "sr-muted"),
    NOT_BACKUPABLE: ("⊘", "not backupable", "sr-muted"),
    GONE: ("⊗", "gone", "sr-muted"),
}


def state_text(p: Protection, palette: dict[str, Style] | None = None) -> Text:
    """``✔ ok 3h``, ``⚠ stale 4d``, ``✖ never``, ``⊘ not backupable``, ``⊗ gone · 3 backups``;
    with policies ``◷ due``, ``✖ overdue 2d``, ``○ no policy``."""
    glyph, word, var = STATE_LOOK.get(p.state, ("?", p.state, "sr-muted"))
    words = f"{glyph} {word}"
    if p.state in (OK, STALE, OVERDUE) and p.age is not None:
        words += f" {human_age(p.age)}"
    elif p.state == GONE:
        words += f" · {p.backup_count} backup{'s' if p.backup_count != 1 else ''}"
    return Text(words, style=(palette or {}).get(var, Style()))


@dataclass
class VolumeRow:
    volume: VolumeInfo
    project_name: str
    protection: Protection
    fields: Fields

    @property
    def gone(self) -> bool:
        return self.protection.state == GONE


def volume_fields(vol: VolumeInfo, project_name: str, p: Protection) -> Fields:
    return {"volume": [vol.name.lower(), vol.id.lower()],
            "project": [project_name.lower(), vol.project_id.lower()],
            "zone": [vol.zone.lower()],
            "tag": [str(t).lower() for t in vol.tags],
            "state": [p.state, STATE_LOOK.get(p.state, ("", p.state, ""))[1],
                      p.state.replace(" ", "-")],
            "type": [str(vol.type).lower()],
            "id": [vol.id.lower()],
            "policy": [p.policy.lower()] if p.policy else []}


class InventoryModel:
    """What is known so far. ``None`` from a level's getter: not loaded yet (ask the API)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.projects: list[ProjectInfo] | None = None
        self.zones: dict[str, list[str]] = {}
        self.volumes: dict[tuple[str, str], list[VolumeInfo]] = {}
        self.stored: dict[str, StoredVolume] = {}
        self.store_known = False
        self.complete = False       # the whole organization was listed at once
        self.policies = PolicyFacts()  # with policies defined, their states replace the ages
        self._rows: list[VolumeRow] | None = None

    # -- what came in ---------------------------------------------------------------------
    def set_projects(self, projects: list[ProjectInfo]) -> None:
        self.projects = list(projects)
        self._rows = None

    def set_zones(self, project_id: str, zones: list[str]) -> None:
        self.zones[project_id] = list(zones)
        self._rows = None

    def set_volumes(self, project_id: str, zone: str, volumes: list[VolumeInfo]) -> None:
        self.volumes[(project_id, zone)] = list(volumes)
        self._rows = None

    def set_all(self, projects: list[ProjectInfo], volumes: list[VolumeInfo]) -> None:
        """The whole organization: every level of every project is known from now on."""
        self.projects = list(projects)
        by_level: dict[tuple[str, str], list[VolumeInfo]] = {}
        for vol in volumes:
            by_level.setdefault((vol.project_id, vol.zone), []).append(vol)
        for p in self.projects:
            self.zones[p.id] = sorted({z for (pid, z) in by_level if pid == p.id})
        self.volumes = {k: sorted(v, key=lambda x: (x.name.lower(), x.id))
                        for k, v in by_level.items()}
        for p in self.projects:  # an empty zone listed before is empty now
            for zone in self.zones[p.id]:
                self.volumes.setdefault((p.id, zone), [])
        self.complete = True
        self._rows = None

    def set_policies(self, facts: PolicyFacts) -> None:
        self.policies = facts
        self._rows = None

    def set_stored(self, stored: dict[str, StoredVolume]) -> None:
        self.stored = dict(stored)
        self.store_known = True
        self._rows = None

    # -- levels ---------------------------------------------------------------------------
    def project_name(self, project_id: str) -> str:
        for p in self.projects or []:
            if p.id == project_id:
                return p.name or p.id
        return ""

    def listed(self, project_id: str) -> bool:
        return any(p.id == project_id for p in self.projects or [])

    def project_level(self) -> list[tuple[str, str, bool]] | None:
        """(id, name, listed) of every project: listed ones, then those only the store knows."""
        if self.projects is None:
            return None
        out = [(p.id, p.name or p.id, True) for p in self.projects]
        known = {p.id for p in self.projects}
        extra = sorted({s.project_id for s in self.stored.values()} - known - {""})
        return out + [(pid, pid, False) for pid in extra]

    def zone_level(self, project_id: str) -> list[str] | None:
        stored = {s.zone for s in self.stored.values() if s.project_id == project_id and s.zone}
        listed = self.zones.get(project_id)
        if listed is None and self.listed(project_id):
            return None
        return sorted(set(listed or []) | stored)

    def volume_level(self, project_id: str, zone: str) -> list[VolumeInfo] | None:
        listed = self.volumes.get((project_id, zone))
        if listed is None and self.listed(project_id):
            return None
        present = [v.id for v in listed or []]
        return list(listed or []) + gone_volumes(self.stored, present, project_id, zone)

    # -- rows -----------------------------------------------------------------------------
    def row(self, vol: VolumeInfo) -> VolumeRow:
        name = self.project_name(vol.project_id)
        status = self.policies.statuses.get(vol.id) if self.policies.active else None
        if status is not None and vol.status != GONE:
            p = protection_from_status(status, self.now())
        else:
            p = protection_of(vol, self.stored.get(vol.id), self.now())
        return VolumeRow(vol, name, p, volume_fields(vol, name, p))

    def rows(self) -> list[VolumeRow]:
        """Every volume known: listed ones and gone ones (cached until something changes)."""
        if self._rows is None:
            listed = [v for vols in self.volumes.values() for v in vols]
            present = [v.id for v in listed]
            gone = [v for v in gone_volumes(self.stored, present)
                    if not self.listed(v.project_id) or (v.project_id, v.zone) in self.volumes
                    or self.complete]
            self._rows = [self.row(v) for v in listed + gone]
        return self._rows

    def touch(self) -> None:
        """Ages move with the clock: compute the rows again at the next ask."""
        self._rows = None

    def find(self, volume_id: str) -> VolumeRow | None:
        return next((r for r in self.rows() if r.volume.id == volume_id), None)


def filtered(rows: list[VolumeRow], query: Query) -> list[VolumeRow]:
    return [r for r in rows if matches(r.fields, query)] if query.active else list(rows)


SORTS: list[tuple[str, Callable[[VolumeRow], Any]]] = [
    ("name", lambda r: (r.volume.name.lower(), r.volume.id)),
    ("project", lambda r: (r.project_name.lower(), r.volume.name.lower())),
    ("zone", lambda r: (r.volume.zone, r.volume.name.lower())),
    ("size", lambda r: r.volume.size),
    ("type", lambda r: (str(r.volume.type), r.volume.name.lower())),
    # oldest first: the volumes most in need of a backup (never = oldest of all)
    ("last backup", lambda r: r.protection.last_backup or ""),
    ("state", lambda r: (list(STATE_LOOK).index(r.protection.state)
                         if r.protection.state in STATE_LOOK else 9, r.volume.name.lower())),
]
# the state first after the name: at 80 columns it is what must show without scrolling
COLUMNS = ("name", "state", "last backup", "project", "zone", "size", "type")


class VolumeTable(KeyTable):
    """Every volume, one row each; ``o`` changes the order, ``O`` reverses it."""

    BINDINGS = [
        Binding("o", "sort", "Order"),
        Binding("O", "reverse", "Reverse", key_display="O"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.sort_index = 0
        self.sort_reverse = False
        self.shown: list[VolumeRow] = []

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def show(self, rows: list[VolumeRow], palette: dict[str, Style] | None = None) -> None:
        """Fill with ``rows`` in the chosen order; the cursor stays on its volume."""
        keep = self.current()
        name, key = SORTS[self.sort_index]
        self.shown = sorted(rows, key=key, reverse=self.sort_reverse)
        self.clear()
        self.add_rows([(Text(shorten(r.volume.name, NAME_WIDTH)),
                        state_text(r.protection, palette),
                        (r.protection.last_backup or "never")[:16].replace("T", " "),
                        Text(r.project_name or r.volume.project_id[:8]), r.volume.zone,
                        human_gb(r.volume.size), Text(str(r.volume.type))) for r in self.shown])
        if keep is not None:
            index = next((i for i, r in enumerate(self.shown)
                          if r.volume.id == keep.volume.id), None)
            if index is not None:
                self.move_cursor(row=index)

    def current(self) -> VolumeRow | None:
        if not self.shown or not 0 <= self.cursor_row < len(self.shown):
            return None
        return self.shown[self.cursor_row]

    def order(self) -> str:
        return f"sort {SORTS[self.sort_index][0]} {'↓' if self.sort_reverse else '↑'}"

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.sort_reverse = SORTS[self.sort_index][0] == "size"
        self.post_message(self.Resorted())

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.post_message(self.Resorted())

    class Resorted(Message):
        """The order changed: the screen shows the rows again."""
