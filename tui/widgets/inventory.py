"""The inventory tree: organization → projects → zones → volumes, loaded lazily.

Each level is fetched in a thread worker when its node is first expanded; meanwhile the node
shows a "loading…" child, so a slow API never looks like a hung app. Results come back as
typed messages (posting a message is thread-safe).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from engine.scaleway.inventory import VolumeInfo
from engine.session import Session
from tui.format import human_gb


NAME_WIDTH = 24  # long names (pvc-<uuid>) are cut in the tree; the detail pane has them whole


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


@dataclass
class NodeData:
    kind: str  # "org" | "project" | "zone" | "volume" | "loading" | "error" | "empty"
    obj: Any = None  # ProjectInfo, zone name or VolumeInfo, as ``kind`` says
    project_id: str = ""
    zone: str = ""
    loaded: bool = False
    extra: dict = field(default_factory=dict)


class InventoryTree(Tree[NodeData]):
    BINDINGS = [
        Binding("space", "toggle_mark", "Mark"),
        Binding("ctrl+r", "reload", "Reload", show=False),
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

    def __init__(self, session: Session, **kwargs: Any) -> None:
        org = session.organization or "organization"
        super().__init__(Text(f"⌂ {org}"), data=NodeData("org"), **kwargs)
        self.session = session
        self.marked: dict[str, VolumeInfo] = {}
        self.project_names: dict[str, str] = {}
        self.guide_depth = 3

    def on_mount(self) -> None:
        self.root.expand()

    # -- loading --------------------------------------------------------------------------
    def on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeData]) -> None:
        data = event.node.data
        if data is not None and data.kind in ("org", "project", "zone") and not data.loaded:
            self.load(event.node)

    def load(self, node: TreeNode[NodeData]) -> None:
        assert node.data is not None
        node.data.loaded = True
        node.remove_children()
        node.add_leaf(Text("⋯ loading…"), data=NodeData("loading"))
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
        node.remove_children()
        if message.error:
            node.add_leaf(Text(f"✖ error: {message.error}"), data=NodeData("error"))
            data.loaded = False  # collapse and expand again to retry
        elif not message.items:
            node.add_leaf(Text("∅ nothing here"), data=NodeData("empty"))
        for item in message.items:
            if data.kind == "org":
                name = item.name or item.id
                self.project_names[item.id] = name
                node.add(Text(f"▣ {name}"), data=NodeData("project", item, project_id=item.id))
            elif data.kind == "project":
                node.add(Text(f"◇ {item}"),
                         data=NodeData("zone", item, project_id=data.project_id, zone=item))
            else:
                node.add_leaf(self.volume_label(item),
                              data=NodeData("volume", item, project_id=data.project_id,
                                            zone=data.zone))
        self.post_message(self.LevelLoaded(node))

    def action_reload(self) -> None:
        node = self.cursor_node
        while node is not None and (node.data is None or node.data.kind not in
                                    ("org", "project", "zone")):
            node = node.parent
        if node is not None:
            node.expand()
            self.load(node)

    # -- marking --------------------------------------------------------------------------
    def volume_label(self, vol: VolumeInfo) -> Text:
        marked = vol.id in self.marked
        glyph = "◉" if marked else "○"
        label = Text(f"{glyph} ")
        label.append(shorten(str(vol.name), NAME_WIDTH), style="bold" if marked else "")
        label.append(f" · {human_gb(vol.size)}")
        if marked:
            label.append(" · marked")
        if not vol.backupable:
            label.append(" · ⚠ no backup")
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
        node.set_label(self.volume_label(vol))
        self.post_message(self.MarksChanged(len(self.marked)))
        self.action_cursor_down()

    def volume_nodes(self) -> list[TreeNode[NodeData]]:
        out: list[TreeNode[NodeData]] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.data is not None and node.data.kind == "volume":
                out.append(node)
            stack.extend(node.children)
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
