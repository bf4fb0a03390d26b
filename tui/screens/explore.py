"""Explore inside a backup: directory tree, file list, preview (text or hex), restore to a folder.

Every name shown comes from an image someone else wrote: it is always wrapped in ``Text`` so
it is never parsed as markup, and notifications are sent with ``markup=False``. Anything that
reads the image (listing, preview, restore) runs in a thread worker started on the App, so a
slow store never blocks the screen and a restore goes on if the screen is closed.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import (DataTable, Footer, Header, Input, Label, ProgressBar, Static,
                             Tree)
from textual.widgets.tree import TreeNode

from engine.errors import StrongroomError
from engine.explore import Entry, Explorer, ExploreError, restore
from engine.explore.listing import filter_entries, sort_entries
from engine.explore.names import show_hidden
from engine.session import Session
from engine.store import SnapshotInfo
from tui import state
from tui.screens.preview import (FULL_PREVIEW_BYTES, PreviewScreen, hex_lines, looks_binary,
                                 text_lines)
from engine.units import plural

PREVIEW_BYTES = 64 * 1024
LOADING = "loading…"
# The file list's columns besides the name, and the least the name gets (at 80 columns).
FIXED_COLUMNS = (("size", 7), ("mtime", 17), ("mode", 11))
MIN_NAME = 18
Opener = Callable[[], Explorer]


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{n}B"


def short_time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M")


def safe_text(text: str, style: str = "") -> Text:
    """Untrusted text as a literal ``Text``; control characters shown as escapes."""
    # The CLI's rule, so that both show a hidden character with the same escape
    return Text(show_hidden(text), style=style, no_wrap=True, overflow="ellipsis")


def hex_dump(data: bytes, columns: int = 80) -> Text:
    """Offset, hex bytes and printable characters; 16, 8 or 4 bytes a row to fit ``columns``."""
    return Text("\n".join(hex_lines(data, columns)), no_wrap=True)


class RestoreTargetScreen(ModalScreen[str | None]):
    """Asks for the local folder to restore into."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, what: str, default: str) -> None:
        super().__init__()
        self.what, self.default = what, default

    def compose(self) -> ComposeResult:
        with Vertical(id="restore-dialog"):
            yield Label(safe_text(f"Restore {self.what} into folder:"))
            yield Input(value=self.default, id="restore-dir")
            yield Label(Text("enter: restore   esc: cancel"), classes="hint")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DirTree(Tree[str]):
    """The directory tree, with the keys of a file manager (vim's too)."""

    BINDINGS = [
        Binding("right,l", "expand", "Expand", show=False),
        Binding("left,h", "collapse", "Collapse", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]

    def action_expand(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.allow_expand and not node.is_expanded:
            node.expand()  # NodeExpanded: the screen loads the children
        elif node.children:
            self.move_cursor(node.children[0])

    def action_collapse(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded and node.children:
            node.collapse()
        elif node.parent is not None:
            self.move_cursor(node.parent)


class FileTable(DataTable):
    """The file list: `→`/`l` opens a directory, `←`/`h` goes up, `g`/`G` top and bottom."""

    BINDINGS = [
        Binding("right,l", "screen.open_entry", "Open", show=False),
        Binding("left,h", "screen.parent", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    def on_resize(self, event: events.Resize) -> None:
        self.post_message(self.Resized())

    class Resized(Message):
        """The table's width changed: the name column takes what the others leave."""


class FilterInput(Input):
    """The file list's filter (k9s' `/`): one esc leaves it, and the filter with it."""

    BINDINGS = [Binding("escape", "screen.end_filter", "Clear filter")]


class ExploreScreen(Screen[None]):
    """Browse one backup. Give it an Explorer, a callable that opens one, or (as the app's
    store screen does) the Session and the snapshot to open (``Session.explorer``)."""

    HELP_TITLE = "explore"
    CSS_PATH = "explore.tcss"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("tab", "focus_next", "Next pane", show=False),
        Binding("shift+tab", "focus_previous", "Previous pane", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("backspace", "parent", "Up"),
        Binding("space", "mark", "Mark"),
        Binding("p", "preview", "Preview"),
        Binding("x", "toggle_hex", "Hex"),
        Binding("r", "restore", "Restore"),
        Binding("c", "cancel_restore", "Stop"),
    ]

    def __init__(self, source: Explorer | Opener | Session,
                 snapshot: SnapshotInfo | None = None, title: str | None = None) -> None:
        super().__init__()
        self._opener = self._make_opener(source, snapshot)
        self.explorer: Explorer | None = source if isinstance(source, Explorer) else None
        self.snapshot_label = title or self._label_for(snapshot)
        self.current_dir = "/"
        self.listing: list[Entry] = []   # the directory, in natural order
        self.entries: list[Entry] = []   # what the table shows: the listing, filtered
        self.filter = ""
        self.marked: set[str] = set()
        self.hex_mode = False
        self.preview_path: str | None = None
        self._preview_data = b""
        self._listing_token = 0
        self._name_width = 0
        self._progress: tuple[int, int] = (0, 0)
        self._cancel_restore: threading.Event | None = None
        self._opened = contextlib.ExitStack()  # what this screen opened (the session's image)

    # -- opening ----------------------------------------------------------------------------
    def _make_opener(self, source: Explorer | Opener | Session,
                     snapshot: SnapshotInfo | None) -> Opener:
        if isinstance(source, Explorer):
            return lambda: source
        if not isinstance(source, Session):
            return source
        if snapshot is None:
            def unavailable() -> Explorer:
                raise ExploreError("no backup to explore")
            return unavailable
        ref = snapshot.id

        def from_session() -> Explorer:
            return self._opened.enter_context(source.explorer(ref))
        return from_session

    @staticmethod
    def _label_for(snapshot: SnapshotInfo | None) -> str:
        if snapshot is None:
            return "backup"
        return f"{snapshot.name or ''} {snapshot.id[:12]}".strip()

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        with Horizontal(id="explore-body"):
            tree = DirTree(Text("/"), data="/", id="dir-tree")
            tree.show_root = True
            yield tree
            with Vertical(id="explore-right"):
                yield FileTable(id="file-list", cursor_type="row", zebra_stripes=True)
                yield FilterInput(id="filter", placeholder="filter (enter: keep, esc: clear)")
                with VerticalScroll(id="preview-pane"):
                    yield Static(Text("select a file to preview it"), id="preview")
        with Horizontal(id="restore-bar"):
            yield Label(Text(""), id="restore-label")
            yield ProgressBar(id="restore-progress", show_eta=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"explore {self.snapshot_label}"
        table = self.query_one("#file-list", DataTable)
        table.border_title = "/"
        # No cell padding, widths with their own gap; the name takes what the others leave.
        table.cell_padding = 0
        self._add_columns(MIN_NAME)
        self.query_one("#preview-pane").border_title = "preview"
        self.query_one("#restore-bar").display = False
        self.query_one("#filter").display = False
        self.set_interval(0.2, self._show_progress)
        tree = self.query_one("#dir-tree", Tree)
        tree.root.add_leaf(Text(LOADING, style="italic"))
        if self.explorer is None:
            self._run(self._open_in_thread, "explore-open")
        else:
            self._explorer_ready()
        table.focus()

    def _add_columns(self, name_width: int) -> None:
        table = self.query_one("#file-list", DataTable)
        self._name_width = name_width
        table.add_column(Text("name"), width=name_width, key="name")
        table.add_column(Text("size", justify="right"), width=7, key="size")
        table.add_column(Text(" modified"), width=17, key="mtime")
        table.add_column(Text(" mode"), width=11, key="mode")

    @on(FileTable.Resized)
    def fit_columns(self) -> None:
        """The name column takes the width the other columns leave (a DataTable column has a
        fixed width: the table is rebuilt, cursor kept, when that width changes)."""
        table = self.query_one("#file-list", DataTable)
        room = table.scrollable_content_region.width - sum(w for _, w in FIXED_COLUMNS)
        width = max(MIN_NAME, room)
        if width == self._name_width:
            return
        row = table.cursor_row
        table.clear(columns=True)
        self._add_columns(width)
        self._fill_table(row)

    def _run(self, fn: Callable[[], None], group: str) -> None:
        # On the App, not the screen: a restore must survive leaving the screen.
        self.app.run_worker(fn, thread=True, group=group, exit_on_error=False)

    def _from_thread(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self.app.call_from_thread(fn, *args)
        except RuntimeError:  # app shutting down
            pass

    def _open_in_thread(self) -> None:
        try:
            explorer = self._opener()
        except StrongroomError as exc:  # encrypted, no filesystem, wrong passphrase…
            self._from_thread(self._failed, str(exc))
            return
        except Exception as exc:  # damaged images: shown, never a crash
            self._from_thread(self._failed, f"{type(exc).__name__}: {exc}")
            return
        self.explorer = explorer
        self._from_thread(self._explorer_ready)

    def _failed(self, message: str) -> None:
        if not self.is_attached:
            return
        self.query_one("#preview", Static).update(safe_text(message, style="bold"))
        self.query_one("#dir-tree", Tree).root.remove_children()
        self.notify(message, title="cannot explore", severity="error", markup=False)

    def _explorer_ready(self) -> None:
        tree = self.query_one("#dir-tree", Tree)
        self._load_tree_node(tree.root)
        tree.root.expand()
        self.open_dir("/")

    # -- directory tree (lazy) --------------------------------------------------------------
    def _load_tree_node(self, node: TreeNode[str]) -> None:
        path = node.data or "/"
        explorer = self.explorer

        def work() -> None:
            try:
                dirs = [e for e in explorer.listdir(path) if e.is_dir] if explorer else []
            except Exception as exc:
                self._from_thread(self._tree_failed, node, str(exc))
                return
            self._from_thread(self._tree_loaded, node, sort_entries(dirs))

        self._run(work, "explore-tree")

    def _tree_loaded(self, node: TreeNode[str], dirs: list[Entry]) -> None:
        if not self.is_attached:
            return
        node.remove_children()
        for entry in dirs:
            child = node.add(safe_text(entry.name), data=entry.path)
            child.add_leaf(Text(LOADING, style="italic"))
        node.allow_expand = bool(dirs)

    def _tree_failed(self, node: TreeNode[str], message: str) -> None:
        if self.is_attached:
            node.remove_children()
            node.add_leaf(safe_text(message, style="italic"))

    @on(Tree.NodeExpanded)
    def tree_expanded(self, event: Tree.NodeExpanded[str]) -> None:
        children = event.node.children
        if len(children) == 1 and str(children[0].label) == LOADING and event.node != \
                self.query_one("#dir-tree", Tree).root:
            self._load_tree_node(event.node)

    @on(Tree.NodeSelected)
    def tree_selected(self, event: Tree.NodeSelected[str]) -> None:
        if event.node.data:
            self.open_dir(event.node.data)

    # -- file list ----------------------------------------------------------------------------
    def open_dir(self, path: str, cursor_on: str | None = None) -> None:
        """List ``path``; the cursor goes to the entry ``cursor_on`` (a path) if it is there."""
        explorer = self.explorer
        if explorer is None:
            return
        self._listing_token += 1
        token = self._listing_token
        # A subtitle, not `loading`: the loading overlay would take focus from the table.
        self.query_one("#file-list", DataTable).border_subtitle = LOADING

        def work() -> None:
            try:
                entries = sort_entries(explorer.listdir(path))
                shown = explorer.stat(path).path
            except Exception as exc:
                self._from_thread(self._listing_failed, token, str(exc))
                return
            self._from_thread(self._listing_loaded, token, shown, entries, cursor_on)

        self._run(work, "explore-list")

    def _listing_failed(self, token: int, message: str) -> None:
        if self.is_attached and token == self._listing_token:
            self.query_one("#file-list", DataTable).border_subtitle = ""
            self.notify(message, severity="error", markup=False)

    def _listing_loaded(self, token: int, path: str, entries: list[Entry],
                        cursor_on: str | None) -> None:
        if not self.is_attached or token != self._listing_token:
            return  # a newer listing was asked for meanwhile
        if path != self.current_dir:
            self._set_filter("")  # a filter belongs to the directory it was typed in
        self.current_dir, self.listing = path, entries
        table = self.query_one("#file-list", DataTable)
        table.border_title = safe_text(path)  # type: ignore[assignment]
        self._apply_filter(cursor_on)

    def _apply_filter(self, cursor_on: str | None = None) -> None:
        """Show the listing through the filter; the cursor stays on ``cursor_on`` (a path) or
        on the entry it was on, when either is still shown."""
        table = self.query_one("#file-list", DataTable)
        if cursor_on is None and self.entries and 0 <= table.cursor_row < len(self.entries):
            cursor_on = self.entries[table.cursor_row].path
        self.entries = filter_entries(self.listing, self.filter)
        paths = [e.path for e in self.entries]
        self._fill_table(paths.index(cursor_on) if cursor_on in paths else 0)
        count = (f"{len(self.entries)} of {plural(len(self.listing), 'entry')}" if self.filter
                 else plural(len(self.listing), "entry"))
        table.border_subtitle = Text.assemble(  # type: ignore[assignment]
            ("filter ", "bold"), safe_text(self.filter), f" · {count}") if self.filter \
            else count

    def _fill_table(self, row: int = 0) -> None:
        table = self.query_one("#file-list", DataTable)
        table.clear()
        for entry in self.entries:
            table.add_row(*self._cells(entry), key=entry.path)
        if self.entries:
            table.move_cursor(row=min(max(row, 0), len(self.entries) - 1))

    def _cells(self, entry: Entry) -> list[Text]:
        name = safe_text(entry.name + ("/" if entry.is_dir else ""),
                         style="bold" if entry.is_dir else "")
        if entry.link_target is not None:
            name = Text.assemble(name, " → ", safe_text(entry.link_target, style="italic"))
            name.no_wrap, name.overflow = True, "ellipsis"
        if entry.path in self.marked:
            name = Text.assemble(Text("● ", style="bold"), name)
            name.no_wrap, name.overflow = True, "ellipsis"
        size = "" if entry.is_dir else human_size(entry.size)
        return [name, Text(size, justify="right"), Text(" " + short_time(entry.mtime_ns)),
                Text(" " + entry.permissions)]

    def selected(self) -> Entry | None:
        table = self.query_one("#file-list", DataTable)
        if not self.entries or table.cursor_row < 0 or table.cursor_row >= len(self.entries):
            return None
        return self.entries[table.cursor_row]

    @on(DataTable.RowSelected, "#file-list")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        entry = self.selected()
        if entry is None:
            return
        if entry.is_dir:
            self.open_dir(entry.path)
        elif entry.type == "symlink":
            self._follow_link(entry)
        else:
            self.action_preview()

    def action_open_entry(self) -> None:
        """`→`/`l` on the file list: into a directory (or a link to one); nothing on a file."""
        entry = self.selected()
        if entry is not None and entry.is_dir:
            self.open_dir(entry.path)
        elif entry is not None and entry.type == "symlink":
            self._follow_link(entry, open_file=False)

    def _follow_link(self, entry: Entry, open_file: bool = True) -> None:
        """Enter on a link: go to the directory it names inside the image, or show the file."""
        explorer = self.explorer

        def work() -> None:
            try:
                target = explorer.stat(explorer.resolve(entry.path))
            except Exception as exc:
                self._from_thread(self._listing_failed, self._listing_token, str(exc))
                return
            if target.is_dir:
                self._from_thread(self.open_dir, target.path)
            elif open_file and target.type == "file":
                self._from_thread(self._open_preview, entry)

        self._run(work, "explore-list")

    @on(DataTable.RowHighlighted, "#file-list")
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        entry = self.selected()
        if entry is not None and entry.type in ("file", "symlink"):
            self._peek()

    # -- filter -------------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.filter
        box.focus()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        if event.value != self.filter:
            self.filter = event.value
            self._apply_filter()

    @on(Input.Submitted, "#filter")
    def filter_kept(self, event: Input.Submitted) -> None:
        event.stop()
        box = self.query_one("#filter", Input)
        box.display = False
        self.query_one("#file-list").focus()

    def action_end_filter(self) -> None:
        """Esc in the filter box: the filter goes and the list has the focus again."""
        self._set_filter("")
        self._apply_filter()
        self.query_one("#file-list").focus()

    def _set_filter(self, value: str) -> None:
        self.filter = value
        box = self.query_one("#filter", Input)
        with box.prevent(Input.Changed):
            box.value = value
        box.display = False

    # -- preview ------------------------------------------------------------------------------
    def action_preview(self) -> None:
        """`p`, or enter on a file: the file full height, searchable."""
        entry = self.selected()
        if entry is None or self.explorer is None:
            return
        if entry.type in ("file", "symlink"):
            self._open_preview(entry)
        else:
            self._peek()

    def _open_preview(self, entry: Entry) -> None:
        explorer = self.explorer
        if explorer is None or not self.is_attached:
            return
        self.app.push_screen(PreviewScreen(
            entry, lambda: explorer.read_file(entry.path, limit=FULL_PREVIEW_BYTES)))

    def _peek(self) -> None:
        """The small pane under the list: the start of the highlighted file."""
        entry, explorer = self.selected(), self.explorer
        if entry is None or explorer is None:
            return
        pane = self.query_one("#preview-pane")
        pane.border_title = safe_text(entry.name)  # type: ignore[assignment]
        if entry.type not in ("file", "symlink"):
            self._show_preview(entry.path, safe_text(entry.type, style="italic"), b"")
            return
        if entry.type == "symlink":
            pane.border_title = safe_text(f"{entry.name} → {entry.link_target}")  # type: ignore[assignment]
        self.preview_path = entry.path

        def work() -> None:
            try:
                data = explorer.read_file(entry.path, limit=PREVIEW_BYTES)
            except Exception as exc:
                self._from_thread(self._show_preview, entry.path, safe_text(str(exc)), b"")
                return
            self._from_thread(self._show_preview, entry.path, None, data)

        self._run(work, "explore-preview")

    def _show_preview(self, path: str, message: Text | None, data: bytes) -> None:
        if not self.is_attached:
            return
        self.preview_path, self._preview_data = path, data
        preview = self.query_one("#preview", Static)
        if message is not None:
            preview.update(message)
            return
        binary = looks_binary(data)
        if self.hex_mode or binary:
            columns = self.query_one("#preview-pane").scrollable_content_region.width - 1
            preview.update(hex_dump(data[:4096], columns))
        else:
            preview.update(Text("\n".join(text_lines(data))))
        self.query_one("#preview-pane").border_subtitle = "hex" if (self.hex_mode or binary) \
            else "text"

    def action_toggle_hex(self) -> None:
        self.hex_mode = not self.hex_mode
        if self.preview_path is not None and self._preview_data:
            self._show_preview(self.preview_path, None, self._preview_data)

    # -- navigation -------------------------------------------------------------------------
    def action_focus_next(self) -> None:
        self.focus_next()

    def action_focus_previous(self) -> None:
        self.focus_previous()

    def action_parent(self) -> None:
        """Up one directory, the cursor on the one we came from (/etc/ssh → /etc, on ssh)."""
        if self.current_dir != "/":
            self.open_dir(self.current_dir.rsplit("/", 1)[0] or "/", cursor_on=self.current_dir)

    def action_back(self) -> None:
        if self.filter:  # k9s: esc first drops the filter, then leaves
            self.action_end_filter()
            return
        self.app.pop_screen()

    def action_mark(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        self.marked.symmetric_difference_update({entry.path})
        table = self.query_one("#file-list", DataTable)
        table.update_cell(entry.path, "name", self._cells(entry)[0])
        if table.cursor_row < len(self.entries) - 1:
            table.move_cursor(row=table.cursor_row + 1)

    # -- restore ------------------------------------------------------------------------------
    def action_restore(self) -> None:
        if self.explorer is None:
            return
        paths = sorted(self.marked) or ([self.selected().path] if self.selected() else [])
        if not paths:
            self.notify("nothing selected to restore", severity="warning")
            return
        if self._cancel_restore is not None:
            self.notify("a restore is already running", severity="warning")
            return
        what = paths[0].rsplit("/", 1)[-1] or "/" if len(paths) == 1 else f"{len(paths)} items"
        # the folder chosen last time, kept in the app's own state file
        default = state.load().get(state.RESTORE_FOLDER) or str(
            Path.cwd() / "strongroom-restore")

        def chosen(folder: str | None) -> None:
            if folder:
                state.remember(state.RESTORE_FOLDER, folder)
                self._start_restore(paths, os.path.expanduser(folder))

        self.app.push_screen(RestoreTargetScreen(what, default), chosen)

    def _start_restore(self, paths: list[str], folder: str) -> None:
        explorer = self.explorer
        cancel = self._cancel_restore = threading.Event()
        self._progress = (0, 0)
        self.query_one("#restore-bar").display = True
        self.query_one("#restore-label", Label).update(safe_text(f"restoring to {folder} "))

        def progress(done: int, total: int) -> None:
            self._progress = (done, total)  # the interval timer draws it: no call per block

        def work() -> None:
            files = skipped = 0
            error = None
            try:
                for path in paths:
                    report = restore(explorer, path, folder, progress=progress, cancel=cancel)
                    files += report.files + report.symlinks
                    skipped += len(report.skipped)
            except Exception as exc:
                error = str(exc)
            self._from_thread(self._restore_done, folder, files, skipped, error)

        self._run(work, "explore-restore")

    def _show_progress(self) -> None:
        if self._cancel_restore is None or not self.is_attached:
            return
        done, total = self._progress
        bar = self.query_one("#restore-progress", ProgressBar)
        bar.update(total=max(total, 1), progress=done)

    def _restore_done(self, folder: str, files: int, skipped: int, error: str | None) -> None:
        self._cancel_restore = None
        if not self.is_attached:
            self._close_image()
            self.app.notify(error or f"restored {plural(files, 'file')} to {folder}", markup=False,
                            severity="error" if error else "information")
            return
        self.query_one("#restore-bar").display = False
        if error:
            self.notify(error, title="restore stopped", severity="error", markup=False)
        elif skipped:
            self.notify(f"restored {plural(files, 'file')} to {folder}; {skipped} unsafe or special "
                        "entries skipped", severity="warning", markup=False)
        else:
            self.notify(f"restored {plural(files, 'file')} to {folder}", markup=False)
        self.marked.clear()
        if self.entries:
            self.open_dir(self.current_dir)

    def on_unmount(self) -> None:
        if self._cancel_restore is None:  # a running restore still reads; it closes at the end
            self._close_image()

    def _close_image(self) -> None:
        self._opened.close()

    def action_cancel_restore(self) -> None:
        if self._cancel_restore is not None:
            self._cancel_restore.set()
