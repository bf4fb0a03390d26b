"""Every snapshot in the store: sortable, filterable with `/`, details of the selected one;
`f` forgets the selected volume's snapshots by a keep policy (previewed, confirmed by name),
`P` prunes the store (a job)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input

from engine.session import StoreStatus
from engine.store import SnapshotInfo
from engine.scaleway.inventory import VolumeInfo
from tui.format import human_bytes, human_duration, in_app_terms, short_time
from tui.query import Fields, parse
from tui.query import matches as match_fields
from tui.widgets.detail import DetailPane, snapshot_facts
from tui.widgets.keys import KeyTable, late_key_to, open_filter

SORTS: list[tuple[str, Callable[[SnapshotInfo], Any]]] = [
    ("time", lambda s: s.time),
    ("volume", lambda s: str(s.source.get("volume_name", "")).lower()),
    ("project", lambda s: str(s.source.get("project_id", ""))),
    ("zone", lambda s: str(s.source.get("zone", ""))),
    ("size", lambda s: s.bytes),
    ("new bytes", lambda s: s.stored_bytes),
]


FILTER_KEYS = ("volume", "project", "zone", "date", "tag", "id")


def snapshot_fields(snap: SnapshotInfo, project_names: dict[str, str] | None = None) -> Fields:
    """What `/` looks in: ``project:`` matches the project's name as well as its id."""
    src, tags = snap.source, snap.tags
    project_id = str(src.get("project_id", ""))
    return {
        "volume": [str(src.get("volume_name", "")).lower(), str(src.get("volume_id", "")).lower(),
                   str(snap.name).lower()],
        "project": [project_id.lower(), (project_names or {}).get(project_id, "").lower()],
        "zone": [str(src.get("zone", "")).lower()],
        "date": [str(snap.time).lower()],
        "tag": [f"{k}={v}".lower() for k, v in tags.items()] +
               [str(t).lower() for t in (src.get("tags") or [])],
        "id": [snap.id.lower()],
    }


def previous_backup(snap: SnapshotInfo, snapshots: list[SnapshotInfo]) -> SnapshotInfo | None:
    """The backup of the same volume just before ``snap`` (None for its first)."""
    volume_id = snap.source.get("volume_id")
    older = [s for s in snapshots if volume_id and s.source.get("volume_id") == volume_id
             and (s.time, s.id) < (snap.time, snap.id)]
    return max(older, key=lambda s: (s.time, s.id), default=None)


class StoreScreen(Screen[None]):
    HELP_TITLE = "store"
    CSS_PATH = "store.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse", key_display="S"),
        Binding("r", "restore", "Restore"),
        Binding("e", "explore", "Explore"),
        Binding("d", "diff", "Diff"),
        Binding("f", "forget", "Forget…"),
        Binding("P", "prune", "Prune", key_display="P"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self, *, volume: VolumeInfo | None = None, snapshot_id: str | None = None,
                 project_names: dict[str, str] | None = None) -> None:
        """``volume``: this volume's backups (the filter set to it; esc goes back at once);
        ``snapshot_id``: the cursor starts on that snapshot."""
        super().__init__()
        self.add_class("jobs-aware")
        self.snapshots: list[SnapshotInfo] = []
        self.volume = volume
        self.snapshot_id = snapshot_id
        self.project_names = dict(project_names or {})
        self.query_text = f"volume:{volume.id}" if volume is not None else ""
        self.sort_index = 0
        self.sort_reverse = True  # newest first

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield Input(self.query_text, placeholder="filter: words, or volume: project: zone: date: "
                    "tag: id:", id="filter", classes="shown" if self.query_text else "",
                    compact=True)
        with Horizontal(id="store-body"):
            yield KeyTable(id="snapshots", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="snap-detail-scroll"):
                yield DetailPane(id="snap-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("id", "time (UTC)", "volume", "zone", "size", "new", "took", "verified")
        table.border_title = (f"Backups of {self.volume.name}" if self.volume is not None
                              else "Snapshots in the store")
        self.query_one("#snap-detail-scroll").border_title = "Snapshot"
        table.focus()
        self.action_reload()
        if not self.project_names:
            self.load_project_names()

    @work(thread=True, group="store-projects", exit_on_error=False, exclusive=True)
    def load_project_names(self) -> None:
        """For `project:` by name; without Scaleway credentials, ids only (no error shown)."""
        try:
            projects = self.app.session.list_projects()  # type: ignore[attr-defined]
        except Exception:
            return
        self.app.call_from_thread(self._names_loaded, {p.id: p.name for p in projects})

    def _names_loaded(self, names: dict[str, str]) -> None:
        self.project_names = names
        if self.query_text:
            self.refresh_table()

    @work(thread=True, group="store", exit_on_error=False, exclusive=True)
    def action_reload(self) -> None:
        status = self.app.session.store_status()  # type: ignore[attr-defined]
        self.app.call_from_thread(self._loaded, status)

    def _loaded(self, status: StoreStatus) -> None:
        table = self.query_one(DataTable)
        if not status.ok:
            table.border_subtitle = "unavailable"
            self.query_one(DetailPane).update(Text(f"store {status.url}: {in_app_terms(status.message)}"))
            return
        self.snapshots = status.snapshots
        self.app.snapshot_cache = status.snapshots  # type: ignore[attr-defined]
        self.refresh_table()

    def visible(self) -> list[SnapshotInfo]:
        query = parse(self.query_text, FILTER_KEYS)
        rows = [s for s in self.snapshots
                if match_fields(snapshot_fields(s, self.project_names), query)]
        name, key = SORTS[self.sort_index]
        return sorted(rows, key=key, reverse=self.sort_reverse)

    def refresh_table(self) -> None:
        table = self.query_one(DataTable)
        keep = self.snapshot_id or (self.current().id if self.current() else None)
        self.snapshot_id = None
        table.clear()
        rows = self.visible()
        for snap in rows:
            src = snap.source or {}
            table.add_row(snap.id[:8], short_time(snap.time), Text(str(src.get("volume_name")
                                                                       or snap.name or "–")),
                          Text(str(src.get("zone", "–"))), human_bytes(snap.bytes),
                          human_bytes(snap.stored_bytes), human_duration(snap.seconds),
                          "✔ yes" if snap.last_verified else "· no", key=snap.id)
        name = SORTS[self.sort_index][0]
        arrow = "↓" if self.sort_reverse else "↑"
        shown = f"{len(rows)} of {len(self.snapshots)}" if self.query_text else f"{len(rows)}"
        problem = parse(self.query_text, FILTER_KEYS).problem
        table.border_subtitle = f"{shown} · sort {name} {arrow}" + (
            f" · ✖ {problem}" if problem else "")
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep))
        self._show_current()
        if not rows:
            self.query_one(DetailPane).update(Text(
                "no snapshot matches the filter" if self.query_text else
                "the store is empty: back up a volume from the inventory (b)"))

    def jobs_changed(self, ids: set[str]) -> None:
        """A finished backup adds a snapshot (the app then drops its cache): reload."""
        if self.app.snapshot_cache is None:  # type: ignore[attr-defined]
            self.action_reload()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_current()

    def current(self) -> SnapshotInfo | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((s for s in self.snapshots if s.id == key), None)

    def _show_current(self) -> None:
        snap = self.current()
        if snap is not None:
            pane = self.query_one(DetailPane)
            pane.update(snapshot_facts(snap, pane.palette()))

    # -- actions --------------------------------------------------------------------------
    def action_filter(self) -> None:
        open_filter(self.query_one("#filter", Input))

    def on_key(self, event: events.Key) -> None:
        late_key_to(self.query_one("#filter", Input), event)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        self.refresh_table()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def action_back(self) -> None:
        """One esc leaves filter mode (k9s): typing in the filter, or a filter applied;
        a volume's backups go straight back to the inventory."""
        box = self.query_one("#filter", Input)
        if box.has_focus or (box.value and self.volume is None):
            box.value = ""
            box.remove_class("shown")
            self.query_one(DataTable).focus()
            return
        self.app.pop_screen()

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.sort_reverse = SORTS[self.sort_index][0] in ("time", "size", "new bytes")
        self.refresh_table()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.refresh_table()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_restore()

    def action_restore(self) -> None:
        from tui.screens.restore import RestoreWizard

        snap = self.current()
        if snap is None:
            self.notify("no snapshot selected", severity="warning")
            return
        self.app.push_screen(RestoreWizard(snapshot=snap))

    def action_forget(self) -> None:
        from tui.screens.forget import ForgetScreen

        snap = self.current()
        if snap is None:
            self.notify("no snapshot selected", severity="warning")
            return
        self.app.push_screen(ForgetScreen(snap))

    def action_prune(self) -> None:
        from engine import jobkinds
        from engine.jobkinds import PruneParams
        from tui.screens.confirm import ConfirmScreen

        def decided(yes: bool | None) -> None:
            if yes:
                self.app.submit_job(jobkinds.spec(PruneParams()))  # type: ignore[attr-defined]
                self.notify("prune started: see the jobs panel", markup=False)

        self.app.push_screen(ConfirmScreen(
            "Prune the store?", "Deletes data that no snapshot needs and repacks packs that are "
            "more than 5% unneeded. Backups may run meanwhile.", yes="Prune"), decided)

    def action_diff(self) -> None:
        """What changed in the files since the volume's previous backup."""
        from tui.screens.diff import DiffScreen

        snap = self.current()
        if snap is None:
            self.notify("no snapshot selected", severity="warning")
            return
        before = previous_backup(snap, self.snapshots)
        if before is None:
            name = snap.source.get("volume_name") or snap.name or snap.id[:8]
            self.notify(f"the first backup of {name}: nothing before it to compare with",
                        severity="warning", markup=False)
            return
        self.app.push_screen(DiffScreen(before, snap))

    def action_explore(self) -> None:
        snap = self.current()
        if snap is None:
            return
        from tui.screens.explore import ExploreScreen

        self.app.push_screen(ExploreScreen(self.app.session, snap))  # type: ignore[attr-defined]
