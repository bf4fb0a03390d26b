"""Browsing keys of the explorer on a real ext4 image (tests/fixtures/explore.py
``browse_image``): panes, widths, filter, natural order, the full-height preview and its
search, going up, tree and table keys, the remembered restore folder, literal names."""
from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Tree

from engine.explore import open_volume
from tests.fixtures.explore import LONG_DIR, LONG_FILE, NEEDLE_LINES, SLASH_MARKUP
from tests.tui.helpers import screen_text, wait_for
from tests.tui.test_explore_screen import ExploreTestApp, names, rendered, settle
from tui.screens.explore import ExploreScreen, RestoreTargetScreen
from tui.screens.preview import PreviewScreen, TextView

DATA_ORDER = ["[bold]dir[//", f"{LONG_DIR}/", "disk1/", "disk2/", "disk10/", SLASH_MARKUP,
              LONG_FILE, "file1.txt", "file2.txt", "file3.txt", "file10.txt", "file20.txt"]


@asynccontextmanager
async def exploring(image: Path, size: tuple[int, int] = (80, 24)) -> AsyncIterator[Pilot]:
    with open(image, "rb") as fh:
        app = ExploreTestApp(open_volume(fh))
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            yield pilot


def table_of(pilot: Pilot) -> DataTable:
    return pilot.app.screen.query_one("#file-list", DataTable)


async def go(pilot: Pilot, *path: str) -> None:
    """From the root, into each named directory by the keys a person uses."""
    for name in path:
        table = table_of(pilot)
        await wait_for(pilot, lambda: f"{name}/" in names(table), what=name)
        row = names(table).index(f"{name}/")
        table.move_cursor(row=row)
        await pilot.press("enter")
        await settle(pilot)


def cursor_name(pilot: Pilot) -> str:
    table = table_of(pilot)
    return names(table)[table.cursor_row]


async def test_tab_moves_between_panes(browse_image: Path) -> None:
    async with exploring(browse_image) as pilot:
        assert pilot.app.focused is table_of(pilot)
        await pilot.press("tab")
        assert pilot.app.focused is not table_of(pilot)
        assert pilot.app.focused.id == "preview-pane"
        await pilot.press("shift+tab", "shift+tab")
        assert pilot.app.focused.id == "dir-tree"


async def test_names_use_the_width(browse_image: Path) -> None:
    async with exploring(browse_image, size=(200, 40)) as pilot:
        await go(pilot, "data")
        table = table_of(pilot)
        shown = rendered(table)
        assert LONG_FILE in shown and f"{LONG_DIR}/" in shown  # whole, not cut at 20
        assert table.columns[table.ordered_columns[0].key].width > 80
        tree = pilot.app.screen.query_one("#dir-tree", Tree)
        assert tree.size.width >= 40
        next(n for n in tree.root.children if n.label.plain == "data").expand()
        await settle(pilot)
        assert LONG_DIR[:36] in rendered(tree)  # not cut at 24 characters
    async with exploring(browse_image, size=(80, 24)) as pilot:
        await go(pilot, "data")
        table = table_of(pilot)
        # at 80 columns every column still shows, the name the widest
        assert "-rw-r--r--" in rendered(table) and "file1.txt" in rendered(table)
        assert table.columns[table.ordered_columns[0].key].width >= 18


async def test_natural_order_dirs_first(browse_image: Path) -> None:
    async with exploring(browse_image) as pilot:
        await go(pilot, "data")
        assert names(table_of(pilot)) == DATA_ORDER
        tree = pilot.app.screen.query_one("#dir-tree", Tree)
        data = next(n for n in tree.root.children if n.label.plain == "data")
        data.expand()
        await settle(pilot)
        assert [c.label.plain for c in data.children][2:] == ["disk1", "disk2", "disk10"]


async def test_filter_k9s_style(browse_image: Path) -> None:
    async with exploring(browse_image) as pilot:
        await go(pilot, "data")
        table = table_of(pilot)
        await pilot.press("slash", *"file1")
        assert names(table) == ["file1.txt", "file10.txt"]
        assert "filter" in str(table.border_subtitle) and "2 of 12" in str(table.border_subtitle)
        await pilot.press("enter")                        # keep it, back to the list
        assert pilot.app.focused is table
        assert not pilot.app.screen.query_one("#filter", Input).display
        assert names(table) == ["file1.txt", "file10.txt"]
        await pilot.press("escape")                       # first esc: the filter goes
        assert isinstance(pilot.app.screen, ExploreScreen)
        assert names(table) == DATA_ORDER

        await pilot.press("slash", *"DISK")               # smart case: a capital is exact
        assert names(table) == []
        await pilot.press(*["backspace"] * 4, *"disk")
        assert names(table) == ["disk1/", "disk2/", "disk10/"]
        await pilot.press("escape")                       # one esc while typing leaves it
        assert isinstance(pilot.app.screen, ExploreScreen)
        assert pilot.app.focused is table
        assert not pilot.app.screen.query_one("#filter", Input).display
        assert names(table) == DATA_ORDER
        await pilot.press("escape")                       # and the next one leaves the screen
        assert not isinstance(pilot.app.screen, ExploreScreen)


async def test_filter_shows_markup_names_literally(browse_image: Path) -> None:
    async with exploring(browse_image) as pilot:
        await go(pilot, "data")
        await pilot.press("slash", *"[bold]")
        table = table_of(pilot)
        assert names(table) == ["[bold]dir[//", SLASH_MARKUP]
        shown = screen_text(pilot)
        assert SLASH_MARKUP in shown and "[bold]dir[/" in shown
        assert "filter [bold]" in shown  # the filter itself, in the border, literal too


async def test_going_up_keeps_the_cursor_on_where_we_were(browse_image: Path) -> None:
    async with exploring(browse_image) as pilot:
        await go(pilot, "etc", "ssh")
        assert names(table_of(pilot)) == ["sshd_config"]
        await pilot.press("backspace")
        await settle(pilot)
        assert cursor_name(pilot) == "ssh/"
        await go(pilot, "ssl")
        await pilot.press("h")                            # h and ← go up the same way
        await settle(pilot)
        assert cursor_name(pilot) == "ssl/"
        await pilot.press("left")
        await settle(pilot)
        assert cursor_name(pilot) == "etc/"


async def test_table_keys(browse_image: Path) -> None:
    async with exploring(browse_image) as pilot:
        await go(pilot, "data")
        await pilot.press("G")
        assert cursor_name(pilot) == "file20.txt"
        await pilot.press("g")
        assert cursor_name(pilot) == "[bold]dir[//"
        await pilot.press("down", "down", "l")            # l (and →) open a directory
        await settle(pilot)
        assert str(table_of(pilot).border_title) == "/data/disk1"
        await pilot.press("h")
        await settle(pilot)
        await pilot.press("down", "right")
        await settle(pilot)
        assert str(table_of(pilot).border_title) == "/data/disk2"


async def test_tree_keys(browse_image: Path) -> None:
    async with exploring(browse_image) as pilot:
        tree = pilot.app.screen.query_one("#dir-tree", Tree)
        tree.focus()
        await pilot.press("down")                         # on data
        data = tree.cursor_node
        assert data is not None and data.label.plain == "data"
        await pilot.press("l")                            # expand, loads its directories
        await settle(pilot)
        assert data.is_expanded and len(data.children) == 5
        await pilot.press("right")                        # expanded: into its first child
        assert tree.cursor_node.label.plain == "[bold]dir[/"
        await pilot.press("left")                         # a collapsed child: to its parent
        assert tree.cursor_node is data
        await pilot.press("h")                            # expanded: collapse
        assert not data.is_expanded
        await pilot.press("G")
        assert tree.cursor_node.label.plain == "lost+found"
        await pilot.press("g")
        assert tree.cursor_node is tree.root


async def preview_of(pilot: Pilot, name: str, key: str = "enter") -> TextView:
    table = table_of(pilot)
    table.move_cursor(row=names(table).index(name))
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PreviewScreen), what="preview")
    view = pilot.app.screen.query_one(TextView)
    await wait_for(pilot, lambda: bool(view.lines), what="the file's lines")
    await pilot.pause()
    return view


def visible(view: TextView, line: int) -> bool:
    top = int(view.scroll_offset.y)
    return top <= line < top + view.scrollable_content_region.height


async def test_full_height_preview_and_search(browse_image: Path) -> None:
    async with exploring(browse_image) as pilot:
        await go(pilot, "docs")
        view = await preview_of(pilot, "manual.txt")
        assert len(view.lines) == 300
        assert view.size.height >= 18                     # the screen's height, not 8 lines
        await pilot.press("G")
        assert visible(view, 299)
        await pilot.press("g")
        assert visible(view, 0)

        await pilot.press("slash", *"needle")
        assert [line for line, _ in view.matches] == list(NEEDLE_LINES)
        assert view.current == 0 and visible(view, NEEDLE_LINES[0])
        await pilot.press("enter")                        # keep the search, back to the text
        assert pilot.app.focused is view
        await pilot.press("n")
        assert view.current == 1 and visible(view, NEEDLE_LINES[1])
        assert not visible(view, NEEDLE_LINES[0])
        await pilot.press("n")
        assert view.current == 2 and visible(view, NEEDLE_LINES[2])
        await pilot.press("n")                            # round the end
        assert view.current == 0 and visible(view, NEEDLE_LINES[0])
        await pilot.press("N")
        assert view.current == 2
        assert "3/3" in str(view.border_subtitle)

        await pilot.press("slash", "escape")              # one esc ends the search
        assert isinstance(pilot.app.screen, PreviewScreen)
        assert view.matches == [] and pilot.app.focused is view
        await pilot.press("escape")                       # the next one closes the preview
        assert isinstance(pilot.app.screen, ExploreScreen)

        view = await preview_of(pilot, "manual.txt", key="p")  # p opens it too
        await pilot.press("escape")


async def test_preview_shows_markup_and_controls_literally(browse_image: Path) -> None:
    async with exploring(browse_image) as pilot:
        await go(pilot, "data")
        view = await preview_of(pilot, SLASH_MARKUP)
        await pilot.press("slash", *"needle", "enter")
        shown = screen_text(pilot)
        assert "[bold]x[/] stays literal" in shown
        assert "[red]needle[/]" in shown                  # a highlighted match, still literal
        assert SLASH_MARKUP in shown                      # the title
        assert view.matches == [(1, 5)]
    assert view.lines[0] == "[bold]x[/] stays literal"


async def test_restore_folder_is_remembered(browse_image: Path, tmp_path: Path) -> None:
    state_home = Path(os.environ["XDG_STATE_HOME"])
    first = tmp_path / "first-choice"

    async def restore_dialog(pilot: Pilot) -> Input:
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, RestoreTargetScreen),
                       what="restore dialog")
        return pilot.app.screen.query_one(Input)

    async with exploring(browse_image) as pilot:
        await go(pilot, "etc")
        table_of(pilot).move_cursor(row=names(table_of(pilot)).index("hosts"))
        box = await restore_dialog(pilot)
        assert box.value == str(Path.cwd() / "strongroom-restore")
        box.value = str(first)
        await pilot.press("enter")
        await settle(pilot)
    assert (first / "hosts").read_text() == "127.0.0.1 localhost\n"

    saved = state_home / "strongroom" / "tui-state.toml"
    assert str(first) in saved.read_text()
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    config = Path(os.environ["XDG_CONFIG_HOME"])
    assert not any(str(first) in p.read_text() for p in config.rglob("*") if p.is_file())

    async with exploring(browse_image) as pilot:          # another run of the app
        box = await restore_dialog(pilot)
        assert box.value == str(first)


def test_preview_lines_never_carry_control_characters() -> None:
    from tui.screens.preview import text_lines

    assert text_lines(b"a\x1b[2Jb\r\n\tc\xff\n") == ["a\\x1b[2Jb", "        c\ufffd"]


async def test_help_lists_the_explorer_keys(browse_image: Path) -> None:
    from tests.fixtures.tui import FakeSession
    from tui.app import StrongroomApp
    from tui.screens.help import HelpScreen
    from tui.settings import AppSettings

    app = StrongroomApp(FakeSession(), AppSettings(theme="strongroom-dark"), theme_dirs=[])
    with open(browse_image, "rb") as fh:
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause(0.1)
            await app.push_screen(ExploreScreen(open_volume(fh)))
            await settle(pilot)
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
            table = app.screen.query_one(DataTable)
            keys = {table.get_row_at(i)[1].plain: table.get_row_at(i)[0].plain
                    for i in range(table.row_count)}
            assert keys["Filter"] == "/" and keys["Next pane"] == "tab"
            assert keys["Top"] == "g" and keys["Bottom"] == "G"   # the list's own keys
            assert "Open" in keys and "Up" in keys
