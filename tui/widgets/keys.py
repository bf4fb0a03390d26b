"""The moving-around keys every tree, table and list of the app shares (vim's, as k9s and
lazygit have them): `→`/`l` expand (or step into), `←`/`h` collapse (or step out to the
parent), `g`/`G` top and bottom.

Use ``KeyTree`` (a ``Tree``), ``KeyTable`` (a ``DataTable``), or put ``TREE_KEYS`` in a Tree
subclass's ``BINDINGS`` with ``TreeKeysMixin`` before ``Tree`` in its bases.
"""
from __future__ import annotations

from typing import Any, Generic, TypeVar

from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Tree

T = TypeVar("T")

TREE_KEYS: list[BindingType] = [
    Binding("right,l", "expand_node", "Expand", show=False),
    Binding("left,h", "collapse_node", "Collapse", show=False),
    Binding("g,home", "scroll_home", "Top", show=False),
    Binding("G,end", "scroll_end", "Bottom", show=False),
]
# A table has nothing to expand: `h`/`l` scroll its columns as `←`/`→` do.
TABLE_KEYS: list[BindingType] = [
    Binding("l", "cursor_right", "Right", show=False),
    Binding("h", "cursor_left", "Left", show=False),
    Binding("g", "scroll_top", "Top", show=False),
    Binding("G", "scroll_bottom", "Bottom", show=False),
]


class TreeKeysMixin:
    """Actions for :data:`TREE_KEYS` (mixed into a ``Tree``)."""

    def action_expand_node(self) -> None:
        tree: Tree[Any] = self  # type: ignore[assignment]
        node = tree.cursor_node
        if node is None:
            return
        if node.allow_expand and not node.is_expanded:
            node.expand()
        elif node.is_expanded and node.children:
            tree.move_cursor(node.children[0])

    def action_collapse_node(self) -> None:
        tree: Tree[Any] = self  # type: ignore[assignment]
        node = tree.cursor_node
        if node is None:
            return
        if node.is_expanded and node.children and node.allow_expand:
            node.collapse()
        elif node.parent is not None and (node.parent is not tree.root or tree.show_root):
            tree.move_cursor(node.parent)


class KeyTree(TreeKeysMixin, Tree[T], Generic[T]):
    BINDINGS = TREE_KEYS


class KeyTable(DataTable[Any]):
    BINDINGS = TABLE_KEYS


def open_filter(box: Input) -> None:
    """Show a screen's filter box and give it the keys at once, not at the next turn (as
    ``focus()`` would): keys typed right after `/`, as a slow link delivers them in one burst,
    must reach the filter, not the view's bindings."""
    box.add_class("shown")
    box.screen.set_focus(box)


def late_key_to(box: Input, event: events.Key) -> bool:
    """A printable key that reached the screen while ``box`` has the focus: typed before the
    focus moved to it (over a slow link keys come in bursts, and `/` then `web` arrive
    together, already sent to the view). It goes into the box, in order."""
    focused = box.screen.focused is box  # has_focus comes later, with the Focus event
    if event.key == "slash" and not focused:  # now, not after the keys queued behind
        open_filter(box)
        event.stop()
        event.prevent_default()
        return True
    if focused and event.is_printable and event.character:
        box.insert_text_at_cursor(event.character)
        event.stop()
        event.prevent_default()
        return True
    return False
