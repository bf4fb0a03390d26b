"""The operator's console (issue 16): find any volume fast, see its backup state, restore the
right thing. Pilot tests on fixed data (FakeSession); the diff of two backups on a real store.
"""
from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from textual.widgets import DataTable, Input

from engine.jobs import DONE, RUNNING
from engine.scaleway.inventory import ProjectInfo
from engine.session import Session
from engine.settings import Settings
from engine.store import SnapshotInfo
from tests.fixtures.tui import ORGANIZATION, P1, FakeSession, volume
from tests.tui.helpers import screen_text, tree_labels, wait_for
from tui.app import StrongroomApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.main import MainScreen
from tui.screens.restore import RestoreWizard
from tui.screens.store import StoreScreen
from tui.settings import AppSettings
from tui.widgets.inventory import InventoryTree
from tui.widgets.jobs import JobRow, JobsPanel
from tui.widgets.volumes import VolumeTable

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc).timestamp()  # db-[main]: 5h, web: 29h
GONE_ID, HIDDEN_ID = "vol-0000dead", "vol-0000hide"
HIDDEN_PROJECT = "33333333-cccc-4ccc-8ccc-000000000003"


def make_app(session: FakeSession | None = None) -> StrongroomApp:
    app = StrongroomApp(session or FakeSession(), AppSettings(theme="strongroom-dark"),
                        theme_dirs=[])
    app.clock = lambda: NOW
    return app


def backup_of(vol_id: str, name: str, project: str, zone: str, when: str,
              snap_id: str) -> SnapshotInfo:
    return SnapshotInfo(snap_id, when, name, 5_000_000_000, 100_000_000, 10.0, {},
                        {"volume_id": vol_id, "volume_name": name, "zone": zone,
                         "project_id": project, "size": 5_000_000_000})


def with_gone() -> FakeSession:
    """Two volumes only the store knows: one deleted (in production, fr-par-1), one in a
    project the key cannot list."""
    session = FakeSession()
    session.snapshots += [
        backup_of(GONE_ID, "old-db", P1, "fr-par-1", "2026-10-01T03:00:00Z", "d1" * 8),
        backup_of(GONE_ID, "old-db", P1, "fr-par-1", "2026-10-02T03:00:00Z", "d2" * 8),
        backup_of(HIDDEN_ID, "hidden-data", HIDDEN_PROJECT, "nl-ams-1",
                  "2026-11-01T03:00:00Z", "e1" * 8)]
    return session


def label_of(tree: InventoryTree, name: str) -> str:
    return next(x for x in tree_labels(tree) if f" {name} " in f"{x} ")


async def opened(pilot) -> InventoryTree:  # noqa: ANN001
    tree = pilot.app.screen.query_one(InventoryTree)
    await wait_for(pilot, lambda: "▣ production" in tree_labels(tree), what="projects")
    await pilot.press("down", "enter")
    await wait_for(pilot, lambda: "◇ fr-par-1" in tree_labels(tree), what="zones")
    await pilot.press("down", "enter")
    await wait_for(pilot, lambda: any("web-data" in x for x in tree_labels(tree)),
                   what="volumes")
    return tree


async def everything_listed(pilot) -> None:  # noqa: ANN001
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.model.complete and screen.model.store_known,
                   what="the whole inventory and the store")


def volumes_shown(tree: InventoryTree) -> list[str]:
    return [n.data.obj.name for n in tree.volume_nodes_in_order()]


async def test_slash_filters_the_inventory_and_one_escape_leaves() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = await opened(pilot)
        await everything_listed(pilot)
        await pilot.press("slash", *"web")
        box = app.screen.query_one("#filter", Input)
        assert box.has_focus
        assert volumes_shown(tree) == ["web-data"]
        assert "1 of 5 match" in tree.border_subtitle
        for query, names in (("project:staging", ["scratch"]),  # by the project's name
                             (f"project:{P1[:8]} zone:fr-par", ["db-[main]", "web-data",
                                                                "logs"]),  # by its id
                             ("state:never", ["logs", "scratch"]),
                             ("tag:data_class=pii", ["web-data"])):
            box.value = query
            await pilot.pause()
            assert volumes_shown(tree) == names, query
        box.value = "colour:blue web"  # an unknown key is said, not matched to nothing
        await pilot.pause()
        assert "unknown key colour:" in tree.border_subtitle
        assert volumes_shown(tree) == ["web-data"]
        await pilot.press("enter")  # the filter stays; the tree takes the keys
        assert tree.has_focus and volumes_shown(tree) == ["web-data"]
        assert tree.cursor_node.data.obj.name == "web-data"
        await pilot.press("escape")  # one esc: filter mode left, the volume still in sight
        assert not box.has_class("shown") and box.value == ""
        assert volumes_shown(tree) == ["db-[main]", "web-data"]  # its zone stays open
        assert tree.cursor_node.data.obj.name == "web-data"
        await pilot.press("slash", *"log", "escape")  # esc while typing leaves too
        assert tree.has_focus and not box.has_class("shown")


async def test_each_volume_shows_its_backup_state_and_a_finished_backup_updates_it() -> None:
    session = FakeSession()
    app = make_app(session)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = await opened(pilot)
        await wait_for(pilot, lambda: "✔ ok 5h" in label_of(tree, "db-[main]"), what="states")
        assert "⚠ stale 1d" in label_of(tree, "web-data")  # 29 hours: more than a day
        await pilot.press("down", "down", "down", "enter")  # fr-par-2
        await wait_for(pilot, lambda: any("logs" in x for x in tree_labels(tree)))
        assert "✖ never" in label_of(tree, "logs")
        await pilot.press("down", "b", "y")  # backs up logs
        await wait_for(pilot, lambda: app.jobs.views() and app.jobs.views()[0].state == DONE)
        await wait_for(pilot, lambda: "✔ ok" in label_of(tree, "logs"),
                       what="the state once the job ended")
        await pilot.press("down", "enter")  # nl-ams-1
        await wait_for(pilot, lambda: any("pvc-1234" in x for x in tree_labels(tree)))
        assert "⊘ not backupable" in label_of(tree, "pvc-1234")


async def test_volumes_only_the_store_knows_show_as_gone_and_restorable() -> None:
    app = make_app(with_gone())
    async with app.run_test(size=(120, 30)) as pilot:
        tree = await opened(pilot)
        await wait_for(pilot, lambda: any("old-db" in x for x in tree_labels(tree)),
                       what="the deleted volume")
        assert "⊗ gone · 2 backups" in label_of(tree, "old-db")
        labels = tree_labels(tree)
        assert f"▣ {HIDDEN_PROJECT[:8]}… · ⊗ not listed" in labels  # one the key cannot list
        gone = next(n for n in tree.volume_nodes() if n.data.obj.id == GONE_ID)
        tree._place(gone)
        await pilot.pause()
        assert "deleted since" in screen_text(pilot)
        await pilot.press("r")  # restorable: the wizard lists its backups
        await wait_for(pilot, lambda: isinstance(app.screen, RestoreWizard))
        table = app.screen.query_one("#snap-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, what="its two backups")
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        project = tree.find_child(tree.root, "project", HIDDEN_PROJECT)
        project.expand()
        await pilot.pause()
        zone = tree.find_child(project, "zone", "nl-ams-1")
        zone.expand()
        await wait_for(pilot, lambda: any("hidden-data" in x for x in tree_labels(tree)))
        assert "⊗ gone · 1 backup" in label_of(tree, "hidden-data")


async def test_the_table_lists_every_volume_sorts_and_filters() -> None:
    app = make_app(with_gone())
    async with app.run_test(size=(120, 30)) as pilot:
        await everything_listed(pilot)
        await pilot.press("v")
        table = app.screen.query_one(VolumeTable)
        assert table.has_focus and table.row_count == 7  # 5 listed and 2 gone

        def names() -> list[str]:
            return [r.volume.name for r in table.shown]

        assert names() == sorted(names(), key=str.lower)
        await pilot.press("o", "o", "o", "o", "o", "o")  # by state
        assert table.sort_index == 6
        assert names()[:2] == ["db-[main]", "web-data"]  # ok, then stale
        assert names()[-2:] == ["hidden-data", "old-db"]  # gone last
        await pilot.press("O")
        assert names()[0] in ("hidden-data", "old-db")
        await pilot.press("o", "o", "o", "o")  # by size, biggest first
        assert names()[0] == "db-[main]"
        text = screen_text(pilot)
        assert "⚠ stale 1d" in text and "⊗ gone · 2 backups" in text and "sort size ↓" in text
        await pilot.press("slash", *"state:gone")
        assert sorted(names()) == ["hidden-data", "old-db"]
        assert "2 of 7" in table.border_subtitle
        await pilot.press("enter", "G")
        assert table.cursor_row == 1
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("v")  # back to the tree, still filtered, on the same volume
        tree = app.screen.query_one(InventoryTree)
        assert tree.has_focus and sorted(volumes_shown(tree)) == ["hidden-data", "old-db"]


async def test_enter_on_a_volume_opens_its_backups() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = await opened(pilot)
        await pilot.press("down", "down")
        assert tree.cursor_node.data.obj.name == "web-data"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen))
        store = app.screen
        table = store.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, what="web-data's two backups")
        assert [r.value for r in table.rows] == ["b2c3d4e5f6071829", "a1b2c3d4e5f60718"]
        assert "Backups of web-data" in screen_text(pilot)
        await pilot.press("G")  # the oldest: nothing before it to compare with
        await pilot.press("d")
        await wait_for(pilot, lambda: any("nothing before it" in n.message
                                          for n in app._notifications))
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RestoreWizard))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is store)
        await pilot.press("escape")  # a volume's backups: esc goes straight back
        assert isinstance(app.screen, MainScreen)
        # the table view's enter does the same
        await everything_listed(pilot)
        await pilot.press("v", "g", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen))
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)


async def test_the_store_filter_matches_project_names_and_reports_unknown_keys() -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen))
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await wait_for(pilot, lambda: app.screen.project_names, what="the project names")
        box = app.screen.query_one("#filter", Input)
        await pilot.press("slash")
        for query, count in (("project:production", 3), ("project:staging", 0),
                             (f"project:{P1[:8]}", 3)):
            box.value = query
            await pilot.pause()
            assert table.row_count == count, query
        box.value = "volume:web colour:red"
        await pilot.pause()
        assert table.row_count == 2 and "unknown key colour:" in table.border_subtitle


async def test_jobs_panel_one_line_counts_snapshot_link_and_cancel_asks() -> None:
    session = FakeSession(step_delay=0.0)
    app = make_app(session)
    async with app.run_test(size=(120, 30)) as pilot:
        await opened(pilot)
        await pilot.press("down", "b", "y")  # db-[main]
        await wait_for(pilot, lambda: app.jobs.views() and app.jobs.views()[0].state == DONE)
        panel = app.screen.query_one(JobsPanel)
        await wait_for(pilot, lambda: panel.border_title == "Jobs · 1 done", what="the counts")
        row = panel.query_one(JobRow)
        assert row.size.height == 1  # one line per job
        snapshot = app.jobs.views()[0].result["snapshot"]
        assert f"→ snapshot {snapshot[:8]}" in screen_text(pilot)
        panel.focus()
        await pilot.pause()
        assert panel.check_action("cancel_job", ()) is False  # no x on a finished job
        assert "Cancel job" not in screen_text(pilot)
        await pilot.press("enter")  # a finished backup opens its snapshot in the store
        await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen))
        store = app.screen
        await wait_for(pilot, lambda: store.current() is not None
                       and store.current().id == snapshot, what="the job's snapshot")
        await pilot.press("escape")
        session.step_delay = 5.0
        await pilot.press("t", "b", "y")  # a second backup, slow: it runs
        await wait_for(pilot, lambda: app.jobs.views()[0].state == RUNNING)
        await wait_for(pilot, lambda: panel.border_title == "Jobs · 1 running · 1 done")
        panel.focus()
        await pilot.press("g")
        assert panel.check_action("cancel_job", ()) is True
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # asked first: saying no lets it run
        await pilot.pause(0.2)
        assert app.jobs.views()[0].state == RUNNING


async def test_tree_keys_expand_collapse_top_bottom() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.screen.query_one(InventoryTree)
        await wait_for(pilot, lambda: "▣ production" in tree_labels(tree), what="projects")
        await pilot.press("down", "l")  # expand production
        await wait_for(pilot, lambda: "◇ fr-par-1" in tree_labels(tree))
        assert tree.cursor_node.is_expanded
        await pilot.press("right")  # on an open node: into its first child
        assert tree.cursor_node.data.kind == "zone"
        await pilot.press("h")  # a closed node: out to its parent
        assert tree.cursor_node.data.kind == "project"
        await pilot.press("left")  # an open node: closed
        assert not tree.cursor_node.is_expanded
        await pilot.press("G")
        assert tree.cursor_node.data.obj.name == "staging [beta]"
        await pilot.press("g")
        assert tree.cursor_node is tree.root


def many(count: int) -> FakeSession:
    """An organization with ``count`` volumes in 5 projects × 3 zones, every tenth backed up."""
    session = FakeSession()
    projects = [ProjectInfo(f"{i:08d}-aaaa-4aaa-8aaa-{i:012d}", f"team-{i}", ORGANIZATION)
                for i in range(5)]
    zones = ("fr-par-1", "fr-par-2", "nl-ams-1")
    session.projects = projects
    session.volumes = [volume(f"vol-{i:08d}", f"app-{i:04d}-data", zones[i % 3],
                              projects[i % 5].id, 10_000_000_000 + i)
                       for i in range(count)]
    session.snapshots = [backup_of(v.id, v.name, v.project_id, v.zone,
                                   "2026-11-23T03:00:00Z", f"{i:016x}")
                         for i, v in enumerate(session.volumes) if i % 10 == 0]
    return session


async def test_filter_and_table_with_500_volumes() -> None:
    session = many(500)
    app = make_app(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await everything_listed(pilot)
        tree = app.screen.query_one(InventoryTree)
        box = app.screen.query_one("#filter", Input)
        await pilot.press("slash")
        box.value = "app-04"  # app-0400 … app-0499
        await pilot.pause()
        assert len(volumes_shown(tree)) == 100
        box.value = "project:team-3 zone:nl-ams-1 state:never"
        await pilot.pause()
        expected = [v.name for i, v in enumerate(session.volumes)
                    if i % 5 == 3 and i % 3 == 2 and i % 10 != 0]
        assert sorted(volumes_shown(tree)) == expected and expected
        await pilot.press("enter", "v")  # the same filter over the table
        table = app.screen.query_one(VolumeTable)
        assert table.row_count == len(expected)
        await pilot.press("escape")
        assert table.row_count == 500
        await pilot.press("o", "o", "o", "o", "o", "o")  # by state: the 50 backed up first
        assert all(r.protection.state == "ok" for r in table.shown[:50])
        assert table.shown[50].protection.state == "never"


async def test_d_diffs_a_backup_with_the_previous_one(tmp_path: Path, fast_kdf: None) -> None:
    """The real app, a real Session, a real store holding two backups of one ext4 volume."""
    from engine.store import Store
    from tests.fixtures.explore import make_ext4, make_tree
    from tui.screens.diff import DiffScreen

    tree_dir = make_tree(tmp_path / "tree")
    first = make_ext4(tree_dir, tmp_path / "v1.img")
    (tree_dir / "etc" / "added.conf").write_text("new\n")
    (tree_dir / "etc" / "hosts").write_text("127.0.0.1 localhost changed\n")
    shutil.rmtree(tree_dir / "var")
    second = make_ext4(tree_dir, tmp_path / "v2.img")
    url = str(tmp_path / "store")
    src = {"volume_id": "vol-1", "volume_name": "web-data", "zone": "fr-par-1",
           "project_id": P1}
    with Store.init(url, "pw") as store:
        for image, when in ((first, "2026-11-20T03:00:00.000000Z"),
                            (second, "2026-11-21T03:00:00.000000Z")):
            with open(image, "rb") as fh:
                store.backup(fh, name="web-data", source_info=src, time=when)
    with Session(Settings(), store_url=url, passphrase=lambda: "pw") as session:
        app = StrongroomApp(session)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.2)
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen), what="store")
            await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 2)
            await pilot.press("g", "d")  # the newest, against the one before
            await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen), what="diff")
            await wait_for(pilot, lambda: app.screen.result is not None, what="the comparison")
            result = app.screen.result
            assert [e.path for e in result.added] == ["/etc/added.conf"]
            assert "/etc/hosts" in [c.path for c in result.changed]
            assert "/var" in [e.path for e in result.removed]
            text = screen_text(pilot)
            assert "+1 added" in text and "/etc/added.conf" in text


async def test_a_level_still_loading_survives_the_tree_being_drawn_again() -> None:
    """The store's snapshots arrive (or a backup ends) while a zone's volumes are on their way
    over a slow link: the zone stays open and gets its volumes."""
    import threading

    class Slow(FakeSession):
        gate = threading.Event()

        def list_volumes(self, project_id: str, zone: str):  # noqa: ANN201
            self.gate.wait(10)
            return super().list_volumes(project_id, zone)

        def inventory(self, *args: object, **kwargs: object):  # noqa: ANN201
            raise RuntimeError("the whole listing is slower still")

    session = Slow()
    app = make_app(session)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.screen.query_one(InventoryTree)
        await wait_for(pilot, lambda: "▣ production" in tree_labels(tree), what="projects")
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: "◇ fr-par-1" in tree_labels(tree), what="zones")
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: "⋯ loading…" in tree_labels(tree))
        app.screen._snapshots_loaded(session.store_status())  # drawn again meanwhile
        await pilot.pause()
        assert "⋯ loading…" in tree_labels(tree)
        session.gate.set()
        await wait_for(pilot, lambda: any("web-data" in x for x in tree_labels(tree)),
                       what="the zone's volumes")
        zone = tree.find_child(tree.find_child(tree.root, "project", P1), "zone", "fr-par-1")
        assert zone.is_expanded


async def test_tree_names_use_the_width() -> None:
    """A pvc-<uuid> name (40 characters) is whole at 200 columns; at 80 it is cut, with the
    state still on the line."""
    long_name = "pvc-8f4ff31e-78de-4857-9487-ce1eaf19922a"
    for width, whole in ((200, True), (80, False)):
        session = FakeSession()
        session.volumes.append(volume("vol-long", long_name, "fr-par-1", P1))
        app = make_app(session)
        async with app.run_test(size=(width, 40)) as pilot:
            tree = await opened(pilot)
            await wait_for(pilot, lambda: any("pvc-8f4f" in x for x in tree_labels(tree)))
            label = next(x for x in tree_labels(tree) if "pvc-8f4f" in x)
            assert (long_name in label) is whole, (width, label, tree.size.width)
            assert "never" in label
