"""The main screen: inventory tree, detail pane, jobs panel."""
from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Header

from engine.scaleway.config import region_of
from engine.scaleway.inventory import VolumeInfo
from engine.session import StoreStatus
from engine.units import plural
from tui.format import in_app_terms
from tui.widgets.detail import DetailPane, volume_facts
from tui.widgets.inventory import InventoryTree, NodeData
from tui.widgets.jobs import JobsPanel


class MainScreen(Screen[None]):
    CSS_PATH = "main.tcss"
    HELP_TITLE = "inventory"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("b", "backup", "Back up"),
        Binding("r", "restore", "Restore"),
        Binding("s", "app.show_view('store')", "Store"),
        Binding("j", "app.show_view('jobs')", "Jobs"),
        Binding("t", "focus_tree", "Tree", show=False),
        Binding("comma", "app.show_view('settings')", "Settings", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._reveal: tuple[str, str, str] | None = None
        self._store_message = ""
        self.add_class("jobs-aware")

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        with Horizontal(id="body"):
            yield InventoryTree(self.app.session, id="tree")  # type: ignore[attr-defined]
            with VerticalScroll(id="detail-scroll"):
                yield DetailPane(id="detail")
        yield JobsPanel(id="jobs")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#detail-scroll").border_title = "Details"
        self.query_one("#tree").border_title = "Inventory"
        self.query_one(DetailPane).show_text(
            "Move through the tree with the arrow keys; enter opens a level.\n"
            "space marks volumes, b backs them up, r restores.\n? lists every key.")
        self.query_one(InventoryTree).focus()
        self.load_snapshots()

    # -- store snapshots (for "this volume's backups") -------------------------------------
    @work(thread=True, group="store", exit_on_error=False, exclusive=True)
    def load_snapshots(self) -> None:
        status = self.app.session.store_status()  # type: ignore[attr-defined]
        self.app.call_from_thread(self._snapshots_loaded, status)

    def _snapshots_loaded(self, status: StoreStatus) -> None:
        self.app.snapshot_cache = status.snapshots if status.ok else []  # type: ignore[attr-defined]
        self._store_message = "" if status.ok else in_app_terms(status.message)
        self._show_selection()

    def jobs_changed(self, ids: set[str]) -> None:
        """A finished backup adds a snapshot: reload them (called by the app's pump)."""
        if self.app.snapshot_cache is None:  # type: ignore[attr-defined]
            self.load_snapshots()

    def on_screen_resume(self) -> None:
        if self.app.snapshot_cache is None:  # type: ignore[attr-defined]
            self.load_snapshots()

    # -- selection ------------------------------------------------------------------------
    def on_tree_node_highlighted(self, event: InventoryTree.NodeHighlighted) -> None:
        self._show_selection()

    def _show_selection(self) -> None:
        tree = self.query_one(InventoryTree)
        node = tree.cursor_node
        detail = self.query_one(DetailPane)
        data: NodeData | None = node.data if node else None
        if data is None:
            return
        if data.kind == "volume":
            detail.update(volume_facts(data.obj, self.app.snapshot_cache,  # type: ignore[attr-defined]
                                       self._store_message,
                                       tree.project_names.get(data.project_id, ""),
                                       detail.palette()))
        elif data.kind == "project":
            p = data.obj
            detail.update(Content(f"project  {p.name}\nid       {p.id}\n\n"
                                  "enter lists its zones"))
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
        tree = self.query_one(InventoryTree)
        tree.border_subtitle = f"{message.count} marked" if message.count else ""

    def selected_volume(self) -> VolumeInfo | None:
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
            for node in tree.volume_nodes():
                node.set_label(tree.volume_label(node.data.obj))  # type: ignore[union-attr]
            tree.border_subtitle = ""
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
        self.query_one(InventoryTree).focus()

    def on_jobs_panel_open(self, message: JobsPanel.Open) -> None:
        from tui.screens.jobs import JobDetailScreen

        self.app.push_screen(JobDetailScreen(message.job_id))

    # -- reveal a volume (after a restore) -------------------------------------------------
    def reveal_volume(self, project_id: str, zone: str, volume_id: str) -> None:
        tree = self.query_one(InventoryTree)
        self._reveal = (project_id, zone, volume_id)
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
        tree.move_cursor(vol_node)
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
                tree.move_cursor(vol_node)
                tree.scroll_to_node(vol_node)
