"""The inventory tree: organization → projects → zones → volumes, with each volume's backup state.

Levels are loaded lazily: a level missing from the ``InventoryModel`` is fetched in a thread
worker when its node is first expanded; meanwhile the node shows a "loading…" child, so a slow
API never looks like a hung app. Once the whole organization is known (the screen lists it in
the background) a level opens from the model at once, with no call.

Volumes only the store knows (deleted since, or in a project this key cannot list) show under
their project and zone, marked gone. With a filter (``/``), the tree shows the matching volumes
only, under their project and zone, all open.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.style import Style
from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from engine.scaleway.inventory import ProjectInfo, VolumeInfo
from engine.session import Session
from tui.query import Query
from tui.widgets.keys import TREE_KEYS, TreeKeysMixin
from tui.widgets.volumes import InventoryModel, VolumeRow, filtered, state_text

NAME_WIDTH = 32  # before the tree has a width; then names take what the state leaves them
VOLUME_INDENT = 12  # the guides before a volume's label (organization → project → zone)


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


@dataclass
class NodeData:
    kind: str  # "org" | "project" | "zone" | "volume" | "loading" | "error" | "empty"
    obj: Any = None  # ProjectInfo, zone name or VolumeInfo, as ``kind`` says
    project_id: str = ""
    zone: str = ""
    loaded: bool = False

    def key(self) -> tuple[str, ...]:
        if self.kind == "volume":
            return ("volume", self.obj.id)
        return (self.kind, self.project_id, self.zone)


class InventoryTree(TreeKeysMixin, Tree[NodeData]):
    BINDINGS = [
        Binding("space", "toggle_mark", "Mark"),
        Binding("ctrl+r", "reload", "Reload", show=False),
        *TREE_KEYS,
    ]

    class Loaded(Message):
        def __init__(self, node: TreeNode[NodeData], items: list[Any], error: str = "") -> None:
            super().__init__()
            self.node, self.items, self.error = node, items, error

    class MarksChanged(Message):
        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    class LevelLoaded(Message):
        """Posted after a node's children were filled, for whoever wants to go deeper."""
        def __init__(self, node: TreeNode[NodeData]) -> None:
            super().__init__()
            self.node = node

    def __init__(self, session: Session, model: InventoryModel, **kwargs: Any) -> None:
        org = session.organization or "organization"
        super().__init__(Text(f"⌂ {org}"), data=NodeData("org"), **kwargs)
        self.session = session
        self.model = model
        self.marked: dict[str, VolumeInfo] = {}
        self.guide_depth = 3
        self.query_: Query = Query()
        self._open: set[tuple[str, ...]] = {("org", "", "")}  # nodes open in the browsing view
        self._fetching: set[tuple[str, ...]] = set()  # levels asked of the API, not yet back

    @property
    def project_names(self) -> dict[str, str]:
        return {p.id: p.name or p.id for p in self.model.projects or []}

    def on_mount(self) -> None:
        self.root.expand()

    def _palette(self) -> dict[str, Style]:
        from tui.widgets.detail import palette
        return palette(self.app.theme_variables)

    # -- loading --------------------------------------------------------------------------
    def on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeData]) -> None:
        data = event.node.data
        if data is None:
            return
        if not self.query_.active:
            self._open.add(data.key())
        if data.kind in ("org", "project", "zone") and not data.loaded:
            self.load(event.node, fresh=False)

    def on_tree_node_collapsed(self, event: Tree.NodeCollapsed[NodeData]) -> None:
        if event.node.data is not None and not self.query_.active:
            self._open.discard(event.node.data.key())

    def load(self, node: TreeNode[NodeData], fresh: bool = True) -> None:
        """Fill ``node``'s level: from the model when it has it (unless ``fresh``), else from
        the API in a worker."""
        assert node.data is not None
        node.data.loaded = True
        if not fresh and self._level(node.data) is not None:
            self._fill(node)
            self.post_message(self.LevelLoaded(node))
            return
        node.remove_children()
        node.add_leaf(Text("⋯ loading…"), data=NodeData("loading"))
        if fresh or node.data.key() not in self._fetching:  # one call in flight per level
            self._fetching.add(node.data.key())
            self._fetch(node)

    @work(thread=True, group="inventory", exit_on_error=False)
    def _fetch(self, node: TreeNode[NodeData]) -> None:
        data = node.data
        assert data is not None
        try:
            items: list[Any]
            if data.kind == "org":
                items = list(self.session.list_projects())
            elif data.kind == "project":
                items = list(self.session.list_zones(data.project_id))
            else:
                items = list(self.session.list_volumes(data.project_id, data.zone))
        except Exception as exc:  # shown in the tree, never a crash
            self.post_message(self.Loaded(node, [], str(exc) or type(exc).__name__))
            return
        self.post_message(self.Loaded(node, items))

    def on_inventory_tree_loaded(self, message: Loaded) -> None:
        node, data = message.node, message.node.data
        assert data is not None
        self._fetching.discard(data.key())
        if message.error:
            node = self._find(self.root, data.key()) or node
            node.remove_children()
            node.add_leaf(Text(f"✖ error: {message.error}"), data=NodeData("error"))
            node.data.loaded = False  # type: ignore[union-attr]  # collapse, expand: retry
            self.post_message(self.LevelLoaded(node))
            return
        if data.kind == "org":
            self.model.set_projects(message.items)
        elif data.kind == "project":
            self.model.set_zones(data.project_id, message.items)
        else:
            self.model.set_volumes(data.project_id, data.zone, message.items)
        if self.query_.active:  # the filtered view is built from the whole inventory
            return
        # the tree may have been built again meanwhile (a backup ended): fill the node that
        # stands for this level now
        current = self._find(self.root, data.key())
        if current is None or current.data is None:
            return
        current.data.loaded = True
        self._fill(current)
        self.post_message(self.LevelLoaded(current))

    def _level(self, data: NodeData) -> list[Any] | None:
        if data.kind == "org":
            return self.model.project_level()
        if data.kind == "project":
            return self.model.zone_level(data.project_id)
        return self.model.volume_level(data.project_id, data.zone)

    def _fill(self, node: TreeNode[NodeData]) -> None:
        """``node``'s children from the model, keeping the cursor on the node it was on."""
        data = node.data
        assert data is not None
        items = self._level(data) or []
        at = self.cursor_node.data.key() if self.cursor_node and self.cursor_node.data else None
        node.remove_children()
        if not items:
            node.add_leaf(Text("∅ nothing here"), data=NodeData("empty"))
        if data.kind == "org":
            for pid, name, listed in items:
                self._add_project(node, pid, name, listed)
        elif data.kind == "project":
            for zone in items:
                self._add_zone(node, data.project_id, zone)
        else:
            self._add_volumes(node, [self.model.row(v) for v in items])
        self._cursor_to(at)

    def _add_project(self, parent: TreeNode[NodeData], pid: str, name: str,
                     listed: bool) -> TreeNode[NodeData]:
        label = Text(f"▣ {name}" if listed else f"▣ {pid[:8]}…")  # the id, whole in details
        if not listed:
            label.append(" · ⊗ not listed", style=self._palette().get("sr-muted", Style()))
        obj = ProjectInfo(pid, name) if listed else ProjectInfo(pid, "")
        child = parent.add(label, data=NodeData("project", obj, project_id=pid))
        return child

    def _add_zone(self, parent: TreeNode[NodeData], pid: str, zone: str) -> TreeNode[NodeData]:
        return parent.add(Text(f"◇ {zone}"), data=NodeData("zone", zone, project_id=pid,
                                                           zone=zone))

    def _name_width(self, rows: list[VolumeRow]) -> int:
        """Names padded to the longest of their zone, and cut so that the state still shows
        in the tree's width (80 columns leave the tree about 38)."""
        longest = max((len(r.volume.name) for r in rows), default=0)
        state = max((len(state_text(r.protection).plain) for r in rows), default=0)
        room = self.size.width - VOLUME_INDENT - state - 4
        return max(min(8, longest), min(longest, room if self.size.width else NAME_WIDTH))

    def on_resize(self) -> None:
        self.relabel_marks()

    def _add_volumes(self, parent: TreeNode[NodeData], rows: list[VolumeRow]) -> None:
        width = self._name_width(rows)
        for row in rows:
            vol = row.volume
            parent.add_leaf(self.volume_label(vol, row, width),
                            data=NodeData("volume", vol, project_id=vol.project_id,
                                          zone=vol.zone))

    # -- the views ------------------------------------------------------------------------
    def rebuild(self) -> None:
        """Everything again from the model: the browsing view (the levels that were open stay
        open) or, with a filter, the matching volumes."""
        at = self.cursor_node.data.key() if self.cursor_node and self.cursor_node.data else None
        root = self.root
        root.remove_children()
        if self.query_.active:
            self._build_filtered()
        else:
            self._reopen(root)
        self._cursor_to(at)
        if self.query_.active:  # on the first match, as a search would
            node = self.cursor_node
            first = next(iter(self.volume_nodes_in_order()), None)
            if first is not None and (node is None or node.data is None
                                      or node.data.kind != "volume"):
                self._place(first)

    def _reopen(self, node: TreeNode[NodeData]) -> None:
        data = node.data
        assert data is not None
        if data.key() not in self._open:
            data.loaded = False
            return
        if self._level(data) is None:  # open, its level still on its way (or to ask again)
            node.expand()
            self.load(node, fresh=False)
            return
        data.loaded = True
        self._fill(node)
        node.expand()
        for child in node.children:
            if child.data is not None and child.data.kind in ("project", "zone"):
                self._reopen(child)

    def _build_filtered(self) -> None:
        rows = filtered(self.model.rows(), self.query_)
        self.root.data.loaded = True  # type: ignore[union-attr]
        if not rows:
            self.root.add_leaf(Text("∅ no volume matches the filter"), data=NodeData("empty"))
            return
        levels: dict[str, dict[str, list[VolumeRow]]] = {}
        for row in rows:
            levels.setdefault(row.volume.project_id, {}).setdefault(row.volume.zone, []).append(row)
        order = {pid: i for i, (pid, _, _) in enumerate(self.model.project_level() or [])}
        for pid in sorted(levels, key=lambda p: order.get(p, len(order))):
            name = self.model.project_name(pid)
            project = self._add_project(self.root, pid, name or pid, bool(name))
            project.data.loaded = True  # type: ignore[union-attr]
            for zone in sorted(levels[pid]):
                zone_node = self._add_zone(project, pid, zone)
                zone_node.data.loaded = True  # type: ignore[union-attr]
                vols = sorted(levels[pid][zone], key=lambda r: (r.volume.name.lower(),
                                                                r.volume.id))
                self._add_volumes(zone_node, vols)
                zone_node.expand()
            project.expand()
        self.root.expand()

    def set_query(self, query: Query) -> None:
        was = self.query_.active
        self.query_ = query
        if query.active or was:
            self.rebuild()

    def _cursor_to(self, key: tuple[str, ...] | None) -> None:
        if key is None:
            return
        node = self._find(self.root, key)
        if node is not None:
            self._place(node)

    def _place(self, node: TreeNode[NodeData]) -> None:
        self._tree_lines  # noqa: B018 — lays the lines out, so the node knows its line
        self.move_cursor(node)

    def _find(self, node: TreeNode[NodeData], key: tuple[str, ...]) -> TreeNode[NodeData] | None:
        if node.data is not None and node.data.key() == key:
            return node
        for child in node.children:
            found = self._find(child, key)
            if found is not None:
                return found
        return None

    def relabel(self) -> None:
        """The store's facts changed (a backup ended): the states again, and gone volumes."""
        self.rebuild()

    def action_reload(self) -> None:
        node = self.cursor_node
        while node is not None and (node.data is None or node.data.kind not in
                                    ("org", "project", "zone")):
            node = node.parent
        if node is not None:
            node.expand()
            self.load(node)

    # -- marking --------------------------------------------------------------------------
    def volume_label(self, vol: VolumeInfo, row: VolumeRow | None = None,
                     width: int = NAME_WIDTH) -> Text:
        row = row or self.model.row(vol)
        marked = vol.id in self.marked
        label = Text("◉ " if marked else "○ ")
        name = shorten(str(vol.name), width)
        label.append(name.ljust(width), style="bold" if marked else "")
        label.append("  ")
        label.append_text(state_text(row.protection, self._palette()))
        return label

    def action_toggle_mark(self) -> None:
        node = self.cursor_node
        if node is None or node.data is None or node.data.kind != "volume":
            self.notify("space marks volumes: move to a volume first", severity="warning")
            return
        vol = node.data.obj
        if vol.id in self.marked:
            del self.marked[vol.id]
        elif not vol.backupable:
            self.notify(f"cannot back up {vol.name}: {vol.reason}",
                        severity="warning", markup=False)
            return
        else:
            self.marked[vol.id] = vol
        self.relabel_marks()
        self.post_message(self.MarksChanged(len(self.marked)))
        self.action_cursor_down()

    def relabel_marks(self) -> None:
        for zone in {id(n.parent): n.parent for n in self.volume_nodes()
                     if n.parent is not None}.values():
            rows = [self.model.row(n.data.obj) for n in zone.children  # type: ignore[union-attr]
                    if n.data is not None and n.data.kind == "volume"]
            width = self._name_width(rows)
            for node, row in zip([n for n in zone.children if n.data is not None
                                  and n.data.kind == "volume"], rows):
                node.set_label(self.volume_label(row.volume, row, width))

    def volume_nodes(self) -> list[TreeNode[NodeData]]:
        out: list[TreeNode[NodeData]] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.data is not None and node.data.kind == "volume":
                out.append(node)
            stack.extend(node.children)
        return out

    def volume_nodes_in_order(self) -> list[TreeNode[NodeData]]:
        out: list[TreeNode[NodeData]] = []

        def walk(node: TreeNode[NodeData]) -> None:
            if node.data is not None and node.data.kind == "volume":
                out.append(node)
            for child in node.children:
                walk(child)

        walk(self.root)
        return out

    def find_child(self, node: TreeNode[NodeData], kind: str, key: str) -> TreeNode[NodeData] | None:
        for child in node.children:
            d = child.data
            if d is None or d.kind != kind:
                continue
            if (kind == "project" and d.project_id == key) or (kind == "zone" and d.zone == key) \
                    or (kind == "volume" and d.obj.id == key):
                return child
        return None
