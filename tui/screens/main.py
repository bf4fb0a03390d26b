"""The main screen: every volume (a tree by project and zone, or a flat table), its backup state,
the detail pane, the jobs panel.

At start the whole organization is listed in the background (each project × zone in
parallel), so `/` and the table work on every volume; the tree's first levels come from their
own quick calls meanwhile. The store's snapshots give each volume's last backup, and the
volumes only the store knows (gone); they are read again when a backup ends.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Tree

from engine.protection import stored_volumes
from engine.scaleway.config import region_of
from engine.scaleway.inventory import ProjectInfo, VolumeInfo
from engine.session import StoreStatus
from engine.units import plural
from tui.format import in_app_terms
from tui.policystate import PolicyFacts, policy_facts
from tui.query import parse
from tui.widgets.detail import DetailPane, volume_facts
from tui.widgets.inventory import InventoryTree, NodeData
from tui.widgets.jobs import JobsPanel
from tui.widgets.keys import late_key_to, open_filter
from tui.widgets.volumes import FILTER_KEYS, InventoryModel, VolumeTable, filtered

AGES_EVERY = 300.0  # seconds: "ok 3h" becomes "ok 4h" without a key pressed


class MainScreen(Screen[None]):
    CSS_PATH = "main.tcss"
    HELP_TITLE = "inventory"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide"), (170, "-wider")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("b", "backup", "Back up"),
        Binding("r", "restore", "Restore"),
        Binding("slash", "filter", "Filter"),
        Binding("v", "toggle_view", "Table/tree"),
        Binding("s", "app.show_view('store')", "Store"),
        Binding("j", "app.show_view('jobs')", "Jobs"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("t", "focus_tree", "Tree", show=False),
        Binding("comma", "app.show_view('settings')", "Settings", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._reveal: tuple[str, str, str] | None = None
        self._store_message = ""
        self._listing = ""  # the whole inventory: "" (done), "listing…" or the error
        self.model = InventoryModel(lambda: self.app.clock())  # type: ignore[attr-defined]
        self.add_class("jobs-aware")

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield Input(placeholder="filter: words, or " + " ".join(f"{k}:" for k in FILTER_KEYS),
                    id="filter", compact=True)
        with Horizontal(id="body"):
            yield InventoryTree(self.app.session, self.model, id="tree")  # type: ignore[attr-defined]
            yield VolumeTable(id="table")
            with VerticalScroll(id="detail-scroll"):
                yield DetailPane(id="detail")
        yield JobsPanel(id="jobs")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#detail-scroll").border_title = "Details"
        self.query_one("#tree").border_title = "Inventory"
        self.query_one("#table").border_title = "Volumes"
        self.query_one(DetailPane).show_text(
            "Move through the tree with the arrow keys; enter opens a level, and a volume's "
            "backups.\nspace marks volumes, b backs them up, r restores, / filters, v shows a "
            "table.\n? lists every key.")
        self.query_one(InventoryTree).focus()
        self.load_snapshots()
        self.list_everything()
        self.set_interval(AGES_EVERY, self._ages_moved)

    # -- the whole inventory (for the filter and the table) --------------------------------
    @work(thread=True, group="inventory-all", exit_on_error=False, exclusive=True)
    def list_everything(self) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        self.app.call_from_thread(self._listed, None, None, "listing every volume…")
        try:
            projects = session.list_projects()
            volumes = session.inventory(projects=[p.id for p in projects], with_backups=False)
        except Exception as exc:  # the tree still opens level by level
            message = " ".join(str(exc).split()) or type(exc).__name__
            self.app.call_from_thread(self._listed, None, None, f"✖ listing failed: {message}")
            return
        self.app.call_from_thread(self._listed, projects, volumes, "")

    def _listed(self, projects: list[ProjectInfo] | None, volumes: list[VolumeInfo] | None,
                status: str) -> None:
        self._listing = status
        if projects is not None and volumes is not None:
            self.model.set_all(projects, volumes)
            tree = self.query_one(InventoryTree)
            if tree.query_.active or self.has_class("-table"):
                self._show_volumes()
            self._load_policies()
        self._subtitles()

    # -- store snapshots (each volume's backups, and the gone ones) -------------------------
    @work(thread=True, group="store", exit_on_error=False, exclusive=True)
    def load_snapshots(self) -> None:
        status = self.app.session.store_status()  # type: ignore[attr-defined]
        self.app.call_from_thread(self._snapshots_loaded, status)

    def _snapshots_loaded(self, status: StoreStatus) -> None:
        self.app.snapshot_cache = status.snapshots if status.ok else []  # type: ignore[attr-defined]
        self._store_message = "" if status.ok else in_app_terms(status.message)
        self.model.set_stored(stored_volumes(status.snapshots) if status.ok else {})
        self._show_volumes()
        self._show_selection()
        self._load_policies()

    # -- policies (their states replace the backup ages when the settings define some) ------
    def _load_policies(self) -> None:
        """Once the whole inventory and the store are known (again, after a backup)."""
        if not (self.model.complete and self.model.store_known):
            return
        volumes = [v for vols in self.model.volumes.values() for v in vols]
        names = {p.id: p.name for p in self.model.projects or []}
        self.survey_policies(volumes, names, list(self.app.snapshot_cache or []))  # type: ignore[attr-defined]

    @work(thread=True, group="policies", exit_on_error=False, exclusive=True)
    def survey_policies(self, volumes: list[VolumeInfo], names: dict[str, str],
                        snapshots: list[Any]) -> None:
        now = datetime.fromtimestamp(self.app.clock(), timezone.utc)  # type: ignore[attr-defined]
        facts = policy_facts(self.app.session, volumes, names, snapshots, now)  # type: ignore[attr-defined]
        self.app.call_from_thread(self._policies_loaded, facts)

    def _policies_loaded(self, facts: PolicyFacts) -> None:
        before = self.app.policy_facts  # type: ignore[attr-defined]
        if facts.problem and (before is None or before.problem != facts.problem):
            self.notify(f"✖ policies not applied: {facts.problem}", severity="error",
                        markup=False, timeout=15)
        self.app.policy_facts = facts  # type: ignore[attr-defined]
        self.model.set_policies(facts)
        self._show_volumes()
        self._show_selection()
        for screen in self.app.screen_stack:
            if hasattr(screen, "policies_changed"):
                screen.policies_changed()

    def _ages_moved(self) -> None:
        self.model.touch()
        self._show_volumes()

    def jobs_changed(self, ids: set[str]) -> None:
        """A finished backup adds a snapshot: reload them (called by the app's pump)."""
        if self.app.snapshot_cache is None:  # type: ignore[attr-defined]
            self.load_snapshots()

    def on_screen_resume(self) -> None:
        if self.app.snapshot_cache is None:  # type: ignore[attr-defined]
            self.load_snapshots()

    # -- tree or table, filtered or not ----------------------------------------------------
    def _show_volumes(self) -> None:
        """Draw the current view again from the model (states, gone volumes, the filter)."""
        tree = self.query_one(InventoryTree)
        query = parse(self.query_one("#filter", Input).value, FILTER_KEYS)
        if self.has_class("-table"):
            table = self.query_one(VolumeTable)
            table.show(filtered(self.model.rows(), query),
                       self.query_one(DetailPane).palette())
            tree.query_ = query
        else:
            tree.set_query(query) if query != tree.query_ else tree.relabel()
        self._subtitles()

    def _subtitles(self) -> None:
        box = self.query_one("#filter", Input)
        query = parse(box.value, FILTER_KEYS)
        tree = self.query_one(InventoryTree)
        table = self.query_one(VolumeTable)
        parts = []
        if tree.marked:
            parts.append(f"{len(tree.marked)} marked")
        if self.has_class("-table"):
            total = len(self.model.rows())
            shown = len(table.shown)
            parts.append((f"{shown} of {total}" if query.active else f"{total}") +
                         f" · {table.order()}")
        elif query.active:
            shown = len(filtered(self.model.rows(), query))
            parts.append(f"{shown} of {len(self.model.rows())} match")
        if query.problem:
            parts.append(f"✖ {query.problem}")
        if self._listing and (query.active or self.has_class("-table")):
            parts.append(self._listing)
        text = " · ".join(parts)
        tree.border_subtitle = text
        table.border_subtitle = text

    def action_filter(self) -> None:
        open_filter(self.query_one("#filter", Input))

    def on_key(self, event: events.Key) -> None:
        late_key_to(self.query_one("#filter", Input), event)

    def on_input_changed(self, event: Input.Changed) -> None:
        query = parse(event.value, FILTER_KEYS)
        if query == self.query_one(InventoryTree).query_ and not self.has_class("-table"):
            self._subtitles()  # the same filter (or none, said again): nothing to redraw
            return
        self._show_volumes()
        self._show_selection()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._focus_view()

    def action_clear_filter(self) -> None:
        """esc: one press leaves filter mode (the filter is cleared), as in k9s."""
        box = self.query_one("#filter", Input)
        if not box.value and not box.has_class("shown"):
            return
        tree = self.query_one(InventoryTree)
        node = tree.cursor_node
        if node is not None and node.data is not None and node.data.kind == "volume":
            # back in the browsing tree, the volume under the cursor stays in sight
            data = node.data
            tree._open |= {("org", "", ""), ("project", data.project_id, ""),
                           ("zone", data.project_id, data.zone)}
        box.value = ""
        box.remove_class("shown")
        self._show_volumes()
        self._focus_view()

    def action_toggle_view(self) -> None:
        vol = self.selected_volume()
        self.toggle_class("-table")
        self._show_volumes()
        if vol is not None and self.has_class("-table"):
            table = self.query_one(VolumeTable)
            index = next((i for i, r in enumerate(table.shown) if r.volume.id == vol.id), None)
            if index is not None:
                table.move_cursor(row=index)
        self._focus_view()

    def _focus_view(self) -> None:
        (self.query_one(VolumeTable) if self.has_class("-table")
         else self.query_one(InventoryTree)).focus()

    def on_volume_table_resorted(self, message: VolumeTable.Resorted) -> None:
        self._show_volumes()

    # -- selection ------------------------------------------------------------------------
    def on_tree_node_highlighted(self, event: InventoryTree.NodeHighlighted) -> None:
        self._show_selection()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self.query_one(VolumeTable):
            self._show_selection()

    def on_tree_node_selected(self, event: Tree.NodeSelected[NodeData]) -> None:
        data = event.node.data
        if data is not None and data.kind == "volume":
            self.open_backups(data.obj)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        row = self.query_one(VolumeTable).current()
        if event.data_table is self.query_one(VolumeTable) and row is not None:
            self.open_backups(row.volume)

    def open_backups(self, vol: VolumeInfo) -> None:
        """enter on a volume: its backups (the store screen, filtered to it)."""
        from tui.screens.store import StoreScreen

        self.app.push_screen(StoreScreen(volume=vol, project_names=self.query_one(
            InventoryTree).project_names))

    def _show_selection(self) -> None:
        detail = self.query_one(DetailPane)
        vol = self.selected_volume()
        if vol is not None:
            row = self.model.row(vol)
            detail.update(volume_facts(vol, self.app.snapshot_cache,  # type: ignore[attr-defined]
                                       self._store_message, row.project_name,
                                       detail.palette(), row.protection,
                                       self.model.policies))
            return
        if self.has_class("-table"):
            return
        node = self.query_one(InventoryTree).cursor_node
        data: NodeData | None = node.data if node else None
        if data is None:
            return
        if data.kind == "project":
            p = data.obj
            listed = self.model.listed(p.id)
            detail.update(Content(f"project  {p.name or '–'}\nid       {p.id}\n\n" + (
                "enter lists its zones" if listed else
                "not listed: the key cannot see this project (or it was deleted);\n"
                "its volumes below are known from the store's backups")))
        elif data.kind == "zone":
            bucket = self.app.session.bucket_for(data.zone)  # type: ignore[attr-defined]
            detail.update(Content(f"zone            {data.zone}\nregion          "
                                  f"{region_of(data.zone)}\nstaging bucket  {bucket}"))
        elif data.kind == "org":
            session = self.app.session  # type: ignore[attr-defined]
            detail.update(Content(f"organization  {session.organization or '–'}\n"
                                  f"profile       {session.label}\nstore         "
                                  f"{session.store_url}"))

    def on_inventory_tree_marks_changed(self, message: InventoryTree.MarksChanged) -> None:
        self._subtitles()

    def selected_volume(self) -> VolumeInfo | None:
        if self.has_class("-table"):
            row = self.query_one(VolumeTable).current()
            return row.volume if row is not None else None
        node = self.query_one(InventoryTree).cursor_node
        if node is not None and node.data is not None and node.data.kind == "volume":
            return node.data.obj
        return None

    # -- actions --------------------------------------------------------------------------
    def action_backup(self) -> None:
        from tui.screens.backup import BackupConfirm

        tree = self.query_one(InventoryTree)
        volumes = list(tree.marked.values())
        if not volumes:
            vol = self.selected_volume()
            if vol is None:
                self.notify("mark volumes with space (or move to one), then b",
                            severity="warning")
                return
            if not vol.backupable:
                self.notify(f"cannot back up {vol.name}: {vol.reason}",
                            severity="warning", markup=False)
                return
            volumes = [vol]

        def go(yes: bool | None) -> None:
            if not yes:
                return
            for vol in volumes:
                self.app.start_backup(vol)  # type: ignore[attr-defined]
            tree.marked.clear()
            tree.relabel_marks()
            self._subtitles()
            self.notify(f"started {plural(len(volumes), 'backup')}")

        self.app.push_screen(BackupConfirm(volumes, self.app.session), callback=go)  # type: ignore[attr-defined]

    def action_restore(self) -> None:
        from tui.screens.restore import RestoreWizard

        vol = self.selected_volume()
        if vol is None:
            self.notify("move to a volume (or open the store with s) to restore",
                        severity="warning")
            return
        self.app.push_screen(RestoreWizard(volume=vol))

    def action_focus_tree(self) -> None:
        self._focus_view()

    def on_jobs_panel_open(self, message: JobsPanel.Open) -> None:
        from tui.screens.jobs import JobDetailScreen

        self.app.push_screen(JobDetailScreen(message.job_id))

    def on_jobs_panel_open_snapshot(self, message: JobsPanel.OpenSnapshot) -> None:
        from tui.screens.store import StoreScreen

        self.app.push_screen(StoreScreen(snapshot_id=message.snapshot_id))

    def filter_to(self, text: str) -> None:
        """Show the volumes ``text`` (the `/` filter's words) matches: the policies view's
        enter."""
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.value = text  # Input.Changed draws the view again
        self._focus_view()

    # -- reveal a volume (after a restore) -------------------------------------------------
    def reveal_volume(self, project_id: str, zone: str, volume_id: str) -> None:
        tree = self.query_one(InventoryTree)
        self._reveal = (project_id, zone, volume_id)
        if self.has_class("-table"):
            self.action_toggle_view()
        if self.query_one("#filter", Input).value:
            self.action_clear_filter()
        tree.focus()
        project = tree.find_child(tree.root, "project", project_id)
        if project is None:
            tree.load(tree.root)
            return
        self._reveal_from(project, reload_zone=True)

    def _reveal_from(self, project: Any, reload_zone: bool = False) -> None:
        assert self._reveal is not None
        tree = self.query_one(InventoryTree)
        _, zone, volume_id = self._reveal
        project.expand()
        zone_node = tree.find_child(project, "zone", zone)
        if zone_node is None or reload_zone:
            tree.load(project)
            return
        zone_node.expand()
        vol_node = tree.find_child(zone_node, "volume", volume_id)
        if vol_node is None:
            tree.load(zone_node)
            return
        self._reveal = None
        tree._place(vol_node)
        tree.scroll_to_node(vol_node)

    def on_inventory_tree_level_loaded(self, message: InventoryTree.LevelLoaded) -> None:
        if self._reveal is None:
            return
        tree = self.query_one(InventoryTree)
        project_id, zone, volume_id = self._reveal
        data = message.node.data
        assert data is not None
        if data.kind == "org":
            project = tree.find_child(tree.root, "project", project_id)
            if project is not None:
                self._reveal_from(project)
        elif data.kind == "project" and data.project_id == project_id:
            zone_node = tree.find_child(message.node, "zone", zone)
            if zone_node is not None:
                zone_node.expand()
                tree.load(zone_node)
        elif data.kind == "zone" and data.zone == zone:
            vol_node = tree.find_child(message.node, "volume", volume_id)
            self._reveal = None
            if vol_node is not None:
                tree._place(vol_node)
                tree.scroll_to_node(vol_node)
