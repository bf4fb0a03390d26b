"""The explore screen in a tiny App, on a real ext4 image: navigate, preview, markup names
shown literally, restore to a folder."""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import App
from textual.widgets import DataTable, Input, Static, Tree

from engine.explore import Explorer, open_volume
from engine.session import Session
from engine.settings import Settings
from engine.store import SnapshotInfo
from tests.fixtures.explore import MARKUP_NAME, Ext4Image
from tui.screens.explore import ExploreScreen


class ExploreTestApp(App[None]):
    def __init__(self, source: object) -> None:
        super().__init__()
        self.source = source

    def on_mount(self) -> None:
        self.push_screen(ExploreScreen(self.source, title="test backup"))


def rendered(widget: object) -> str:
    lines = []
    for y in range(widget.size.height):  # type: ignore[attr-defined]
        strip = widget.render_line(y)  # type: ignore[attr-defined]
        lines.append("".join(segment.text for segment in strip))
    return "\n".join(lines)


async def settle(pilot) -> None:  # noqa: ANN001
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def names(table: DataTable) -> list[str]:
    return [table.get_row_at(i)[0].plain.removeprefix("● ") for i in range(table.row_count)]


async def test_navigate_preview_and_literal_markup(ext4_image: Ext4Image) -> None:
    with open(ext4_image.raw, "rb") as fh:
        app = ExploreTestApp(lambda: open_volume(fh))  # opened in a thread worker
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, ExploreScreen)
            table = screen.query_one("#file-list", DataTable)
            assert names(table) == ["etc/", "home/", "lost+found/", "var/"]
            # the tree loaded the top directories lazily
            tree = screen.query_one("#dir-tree", Tree)
            assert [c.label.plain for c in tree.root.children] == \
                ["etc", "home", "lost+found", "var"]

            await pilot.press("down", "enter")           # into home/
            await settle(pilot)
            assert names(table) == ["ada/"]
            await pilot.press("enter")                   # into home/ada/
            await settle(pilot)
            assert names(table)[0] == "docs/"
            assert MARKUP_NAME in names(table)
            assert all(isinstance(cell, Text) for cell in table.get_row_at(1))
            assert "[bold red]loud" in rendered(table)   # shown literally, not as markup

            run_row = names(table).index("run.sh")
            await pilot.press(*["down"] * run_row)       # highlighting a file previews it
            await settle(pilot)
            preview = screen.query_one("#preview", Static)
            assert "echo hi" in str(preview.content)
            assert "rwxr-x---" in rendered(table)

            await pilot.press("up")                      # photo.bin: binary → hex view
            await settle(pilot)
            assert names(table)[table.cursor_row] == "photo.bin"
            assert "00000000  00 01 02 03 04 05 06 07  ........" in str(preview.content)

            await pilot.press("up")                      # notes-link → docs/notes.md
            await settle(pilot)
            assert str(preview.content).startswith("# Notes")

            await pilot.press("backspace")               # up to /home
            await settle(pilot)
            assert names(table) == ["ada/"]


async def test_restore_selection_to_folder(ext4_image: Ext4Image, tmp_path: Path) -> None:
    with open(ext4_image.qcow2, "rb") as fh:
        explorer: Explorer = open_volume(fh)
        app = ExploreTestApp(explorer)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("space")                   # mark etc/
            await pilot.press("down", "down", "down")    # var/
            await pilot.press("space")
            await pilot.press("r")
            await pilot.pause()
            box = app.screen.query_one(Input)
            box.value = str(tmp_path / "out")
            await pilot.press("enter")
            await settle(pilot)
    out = tmp_path / "out"
    assert (out / "etc" / "hosts").read_bytes() == (ext4_image.tree / "etc/hosts").read_bytes()
    assert (out / "var" / "log" / "big.log").read_bytes() == \
        (ext4_image.tree / "var/log/big.log").read_bytes()
    assert not (out / "home").exists()


class SnapshotApp(App[None]):
    def __init__(self, session: Session, snapshot: SnapshotInfo) -> None:
        super().__init__()
        self.session, self.snapshot = session, snapshot

    def on_mount(self) -> None:
        self.push_screen(ExploreScreen(self.session, self.snapshot))


async def test_opens_a_store_snapshot_as_the_app_does(ext4_image: Ext4Image, tmp_path: Path,
                                                      fast_kdf: None) -> None:
    """Through the Session, as the store screen does (``Session.explorer``)."""
    from engine.store import Store

    from tests.fixtures.explore import make_luks

    luks = make_luks(tmp_path / "luks.img", tmp_path / "key")
    url = str(tmp_path / "store")
    with Store.init(url, "pw") as store:
        with open(ext4_image.qcow2, "rb") as src:
            good = store.backup(src, name="ext4").snapshot
        with open(luks, "rb") as src:
            locked = store.backup(src, name="luks").snapshot
    with Session(Settings(), store_url=url, passphrase=lambda: "pw") as session:
        app = SnapshotApp(session, good)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            table = app.screen.query_one("#file-list", DataTable)
            assert names(table) == ["etc/", "home/", "lost+found/", "var/"]
            await pilot.press("enter")
            await settle(pilot)
            assert names(table) == ["hosts", "secret.conf"]
            assert "localhost" in str(app.screen.query_one("#preview", Static).content)
            app.pop_screen()
            await pilot.pause()

        app = SnapshotApp(session, locked)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            message = str(app.screen.query_one("#preview", Static).content)
            assert "encrypted (LUKS2)" in message


async def test_e_on_a_snapshot_in_the_app_explores_it(ext4_image: Ext4Image, tmp_path: Path,
                                                       fast_kdf: None) -> None:
    """The real app, a real Session, a real store: 's' then 'e' on the snapshot."""
    from engine.store import Store
    from tests.tui.helpers import screen_text, wait_for
    from tui.app import StrongroomApp
    from tui.screens.store import StoreScreen

    url = str(tmp_path / "store")
    with Store.init(url, "pw") as store, open(ext4_image.qcow2, "rb") as src:
        store.backup(src, name="web-data")
    with Session(Settings(), store_url=url, passphrase=lambda: "pw") as session:
        app = StrongroomApp(session)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen), what="store")
            await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1,
                           what="snapshot row")
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, ExploreScreen), what="explore")
            table = app.screen.query_one("#file-list", DataTable)
            await wait_for(pilot, lambda: table.row_count == 4, what="root listing")
            await pilot.press("down", "enter")
            # the next enter is for ada/: only once home/ is listed (it loads in a thread; a
            # key pressed sooner acts on the listing still shown)
            await wait_for(pilot, lambda: names(table) == ["ada/"], what="home")
            await pilot.press("enter")
            await wait_for(pilot, lambda: MARKUP_NAME in names(table), what="home/ada")
            assert "[bold red]loud" in screen_text(pilot)
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen), what="back")


async def test_hostile_names_do_not_break_the_screen(hostile_image: Path) -> None:
    from tests.fixtures.explore import ESCAPE_NAME

    with open(hostile_image, "rb") as fh:
        app = ExploreTestApp(open_volume(fh))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            table = app.screen.query_one("#file-list", DataTable)
            shown = rendered(table)
            assert "\\x1b[2J\\x0a" in shown          # escaped, one line, nothing cleared
            assert "\x1b" not in shown and ESCAPE_NAME not in names(table)
            assert "outside/evil" in shown and "[bold red]loud" in shown
            row = next(i for i, n in enumerate(names(table)) if n.startswith("\\x1b"))
            await pilot.press(*["down"] * row)
            await settle(pilot)
            assert "terminal escape in the name" in str(
                app.screen.query_one("#preview", Static).content)
