"""A file from inside a backup, full height: text or hex, with search (``/``, then ``n``/``N``).

The bytes are untrusted: every line is shown through ``show_hidden`` (a control character is
``\\xNN``, never sent to the terminal) and drawn as a plain ``Text``, never parsed as markup.
Lines are drawn only when on screen (the Line API), so a long file costs nothing to scroll.
"""
from __future__ import annotations

import string
from collections.abc import Callable

from rich.segment import Segment
from rich.text import Text
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Header, Input

from engine.explore import Entry
from engine.explore.listing import find_all
from engine.terminal import show_hidden
from engine.units import human_bytes

FULL_PREVIEW_BYTES = 1 << 20
HEX_WIDTH = 16
TAB = 8
Reader = Callable[[], bytes]


def looks_binary(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return True
    try:
        data[:8192].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(data[:8192]) - 4  # a multibyte char cut at the end is fine
    return False


def hex_lines(data: bytes, columns: int = 80) -> list[str]:
    """Offset, hex bytes and printable characters; 16, 8 or 4 bytes a row to fit ``columns``."""
    printable = set(string.ascii_letters + string.digits + string.punctuation + " ")
    width = next((n for n in (HEX_WIDTH, 8, 4) if 11 + 4 * n <= columns), 4)
    lines = []
    for off in range(0, len(data), width):
        row = data[off:off + width]
        hexes = " ".join(f"{b:02x}" for b in row).ljust(width * 3 - 1)
        chars = "".join(chr(b) if chr(b) in printable else "." for b in row)
        lines.append(f"{off:08x}  {hexes}  {chars}")
    return lines


def text_lines(data: bytes) -> list[str]:
    """Decoded lines, safe to draw: tabs expanded, a CRLF's CR dropped, hidden characters
    (escape sequences, bidi overrides…) shown as ``\\xNN``."""
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [show_hidden(line.removesuffix("\r").expandtabs(TAB)) for line in lines]


class TextView(ScrollView, can_focus=True):
    """Lines of plain text, drawn when visible; search matches highlighted."""

    COMPONENT_CLASSES = {"text-view--match", "text-view--current"}
    BINDINGS = [
        Binding("up,k", "scroll_up", "Up", show=False),
        Binding("down,j", "scroll_down", "Down", show=False),
        Binding("left,h", "scroll_left", "Left", show=False),
        Binding("right,l", "scroll_right", "Right", show=False),
        Binding("pageup,b", "page_up", "Page up", show=False),
        Binding("pagedown,space", "page_down", "Page down", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "scroll_end", "Bottom", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: list[str] = []
        self.matches: list[tuple[int, int]] = []  # (line, column), in reading order
        self.match_length = 0
        self.current = -1
        self._by_line: dict[int, list[int]] = {}

    def set_lines(self, lines: list[str]) -> None:
        self.lines = lines
        self.clear_matches()
        width = max((len(line) for line in lines), default=0)
        self.virtual_size = Size(width + 1, len(lines))
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    # -- search -------------------------------------------------------------------------------
    def clear_matches(self) -> None:
        self.matches, self._by_line, self.current, self.match_length = [], {}, -1, 0
        self.refresh()

    def search(self, pattern: str) -> int:
        """Highlight every match of ``pattern``; the current one is the first at or below the
        top line. Returns how many there are."""
        self.matches = [(n, col) for n, line in enumerate(self.lines)
                        for col in find_all(pattern, line)]
        self.match_length = len(pattern)
        self._by_line = {}
        for n, col in self.matches:
            self._by_line.setdefault(n, []).append(col)
        top = int(self.scroll_offset.y)
        self.current = next((i for i, (n, _) in enumerate(self.matches) if n >= top),
                            0 if self.matches else -1)
        self._show_current()
        return len(self.matches)

    def step(self, forward: bool) -> None:
        """The next (or previous) match, round the end."""
        if not self.matches:
            return
        self.current = (self.current + (1 if forward else -1)) % len(self.matches)
        self._show_current()

    def _show_current(self) -> None:
        self.refresh()
        if self.current < 0:
            return
        line, col = self.matches[self.current]
        width = self.scrollable_content_region.width
        x = 0 if col + self.match_length < width else col - width // 3
        self.scroll_to(x, max(0, line - self.scrollable_content_region.height // 3),
                       animate=False)

    # -- drawing ------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = y + scroll_y
        width = self.scrollable_content_region.width
        if index >= len(self.lines):
            return Strip.blank(width, self.rich_style)
        text = Text(self.lines[index], no_wrap=True, end="")
        for col in self._by_line.get(index, ()):
            current = self.current >= 0 and self.matches[self.current] == (index, col)
            style = self.get_component_rich_style(
                "text-view--current" if current else "text-view--match")
            text.stylize(style, col, col + self.match_length)
        segments = list(text.render(self.app.console))
        strip = Strip(Segment.apply_style(segments, self.rich_style), text.cell_len)
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)


class SearchInput(Input):
    """The preview's search box: one esc leaves it (and the search)."""

    BINDINGS = [Binding("escape", "screen.end_search", "Cancel search")]


class PreviewScreen(Screen[None]):
    """One file, full height. ``read`` is called in a thread worker (the bytes come from the
    store); ``title`` is the file's name, shown literally."""

    HELP_TITLE = "preview"
    CSS_PATH = "explore.tcss"
    BINDINGS = [
        Binding("escape,q", "back", "Back"),
        Binding("slash", "search", "Search"),
        Binding("n", "next_match", "Next"),
        Binding("N", "previous_match", "Previous"),
        Binding("x", "toggle_hex", "Hex"),
    ]

    def __init__(self, entry: Entry, read: Reader, limit: int = FULL_PREVIEW_BYTES) -> None:
        super().__init__()
        self.entry, self._read, self.limit = entry, read, limit
        self.data = b""
        self.hex_mode = False
        self.binary = False
        self.pattern = ""

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield TextView(id="preview-view")
        yield SearchInput(id="preview-search", placeholder="search (enter: keep, esc: cancel)")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"preview {show_hidden(self.entry.path)}"
        view = self.query_one(TextView)
        view.border_title = Text(show_hidden(self.entry.name))  # type: ignore[assignment]
        view.border_subtitle = "loading…"
        self.query_one(SearchInput).display = False
        view.focus()
        self.app.run_worker(self._load, thread=True, group="explore-preview",
                            exit_on_error=False)

    def _load(self) -> None:
        try:
            data, problem = self._read(), ""
        except Exception as exc:  # a damaged file: said, never a crash
            data, problem = b"", " ".join(str(exc).split()) or type(exc).__name__
        try:
            self.app.call_from_thread(self._loaded, data, problem)
        except RuntimeError:  # the app is closing
            pass

    def _loaded(self, data: bytes, problem: str) -> None:
        if not self.is_attached:
            return
        view = self.query_one(TextView)
        if problem:
            view.set_lines([show_hidden(problem)])
            view.border_subtitle = "cannot read"
            return
        self.data, self.binary = data, looks_binary(data)
        self._show()

    def _show(self) -> None:
        view = self.query_one(TextView)
        hexed = self.hex_mode or self.binary
        columns = view.scrollable_content_region.width or self.app.size.width
        view.set_lines(hex_lines(self.data, columns) if hexed else text_lines(self.data))
        if self.pattern:
            view.search(self.pattern)
        self._describe()

    def _describe(self) -> None:
        view = self.query_one(TextView)
        parts = ["hex" if self.hex_mode or self.binary else "text"]
        size = self.entry.size
        if size > len(self.data):
            parts.append(f"first {human_bytes(len(self.data))} of {human_bytes(size)}")
        if self.pattern:
            found = len(view.matches)
            parts.append(f"{view.current + 1}/{found} “{show_hidden(self.pattern)}”" if found
                         else f"no match for “{show_hidden(self.pattern)}”")
        view.border_subtitle = Text(" · ".join(parts))  # type: ignore[assignment]

    # -- search -------------------------------------------------------------------------------
    def action_search(self) -> None:
        box = self.query_one(SearchInput)
        box.display = True
        box.value = self.pattern
        box.focus()

    @on(Input.Changed, "#preview-search")
    def search_changed(self, event: Input.Changed) -> None:
        self.pattern = event.value
        view = self.query_one(TextView)
        if self.pattern:
            view.search(self.pattern)
        else:
            view.clear_matches()
        self._describe()

    @on(Input.Submitted, "#preview-search")
    def search_kept(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(SearchInput).display = False
        self.query_one(TextView).focus()

    def action_end_search(self) -> None:
        self.pattern = ""
        self.query_one(TextView).clear_matches()
        box = self.query_one(SearchInput)
        box.value, box.display = "", False
        self.query_one(TextView).focus()
        self._describe()

    def action_next_match(self) -> None:
        self._step(True)

    def action_previous_match(self) -> None:
        self._step(False)

    def _step(self, forward: bool) -> None:
        view = self.query_one(TextView)
        if not self.pattern:
            raise SkipAction()
        view.step(forward)
        self._describe()

    def action_toggle_hex(self) -> None:
        self.hex_mode = not self.hex_mode
        if self.data:
            self._show()

    def action_back(self) -> None:
        self.app.pop_screen()
