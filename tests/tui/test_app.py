"""Pilot tests of the app's behaviour on fixed data (FakeSession, at a boundary we own).

The same features against the real engine and the sandbox are in test_sandbox.py.
"""
from __future__ import annotations

from textual.command import CommandList, CommandPalette
from textual.widgets import DataTable, Input

from engine.jobkinds import BackupParams
from engine.jobs import CANCELLED, DONE, RUNNING, JobView, Reporter
from tests.fixtures.tui import FakeSession
from tests.tui.helpers import screen_text, tree_labels, wait_for
from tui.app import StrongroomApp
from tui.settings import AppSettings
from tui.commands import commands_for
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.restore import RestoreWizard
from tui.screens.store import StoreScreen
from tui.widgets.inventory import InventoryTree
from tui.widgets.jobs import JobRow, JobsPanel


def make_app(session: FakeSession | None = None) -> StrongroomApp:
    return StrongroomApp(session or FakeSession(), AppSettings(theme="strongroom-dark"),
                         theme_dirs=[])


def views(app: StrongroomApp) -> list[JobView]:
    return app.jobs.views()


async def open_fr_par_1(pilot) -> InventoryTree:  # noqa: ANN001
    tree = pilot.app.screen.query_one(InventoryTree)
    await wait_for(pilot, lambda: "▣ production" in tree_labels(tree), what="projects")
    await pilot.press("down", "enter")
    await wait_for(pilot, lambda: "◇ fr-par-1" in tree_labels(tree), what="zones")
    await pilot.press("down", "enter")
    await wait_for(pilot, lambda: any("web-data" in x for x in tree_labels(tree)), what="volumes")
    return tree


async def test_tree_details_and_markup_shown_literally() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = await open_fr_par_1(pilot)
        await pilot.press("down")  # db-[main]
        assert tree.cursor_node.data.obj.name == "db-[main]"
        # the store's snapshots load in a thread at start: a loaded machine may still be on it
        await wait_for(pilot, lambda: "backups in the store: 1" in screen_text(pilot),
                       what="the volume's backups")
        text = screen_text(pilot)
        # names, tags and server names full of markup characters come out as typed
        assert "db-[main]" in text and "[bold]x[/bold]" in text and "db [1]" in text
        assert "staging [beta]" in text
        assert "backups in the store: 1" in text and "c3d4e5f6" in text
        assert "15000 IOPS" in text and "environment  prod" in text


async def test_not_backupable_volume_cannot_be_marked_and_reason_is_literal() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = await open_fr_par_1(pilot)
        await pilot.press("down", "down", "down", "down", "enter")  # nl-ams-1
        await wait_for(pilot, lambda: any("pvc-1234" in x for x in tree_labels(tree)))
        await pilot.press("down")
        assert tree.cursor_node.data.obj.name == "pvc-1234"
        await pilot.press("space")
        assert tree.marked == {}
        text = screen_text(pilot)
        assert "[red]owned by" in text and "CSI[/red]" in text


async def test_backup_of_marked_volumes_reaches_done() -> None:
    session = FakeSession()
    app = make_app(session)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = await open_fr_par_1(pilot)
        await pilot.press("down", "space", "space")  # marks db-[main] and web-data
        assert sorted(v.name for v in tree.marked.values()) == ["db-[main]", "web-data"]
        await pilot.press("b")
        assert isinstance(app.screen, ConfirmScreen)
        text = screen_text(pilot)
        assert "strongroom-staging-fr-par" in text and "/srv/strongroom/store" in text
        assert "snapshot" in text
        await pilot.press("y")
        await wait_for(pilot, lambda: len(views(app)) == 2 and all(v.state == DONE
                                                                   for v in views(app)))
        # submitted as job specs: the jobs say which volume they backed up, as data
        assert sorted(v.params["volume_id"] for v in views(app)) == ["vol-00000001",
                                                                     "vol-00000002"]
        assert all(v.kind == "backup" and v.result["stored_bytes"] > 0 for v in views(app))
        # the jobs panel shows them at its next refresh tick (however late a loaded machine runs it)
        await wait_for(pilot, lambda: screen_text(pilot).count("✔ done") == 2,
                       what="both jobs shown done")
        rows = list(app.screen.query(JobRow))
        assert len(rows) == 2
        assert tree.marked == {}
        assert len(session.snapshots) == 5


async def test_job_detail_lists_phases_and_calls() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await open_fr_par_1(pilot)
        await pilot.press("down", "down", "b", "y")
        await wait_for(pilot, lambda: views(app) and views(app)[0].state == DONE)
        await wait_for(pilot, lambda: "✔ done" in screen_text(pilot), what="the job row")
        await pilot.press("j")  # every job, with its history
        await wait_for(pilot, lambda: type(app.screen).__name__ == "JobsScreen")
        await pilot.press("i")  # enter on a finished backup opens its snapshot instead
        await wait_for(pilot, lambda: type(app.screen).__name__ == "JobDetailScreen")
        calls = app.screen.query_one("#calls", DataTable)
        phases = app.screen.query_one("#phases", DataTable)
        assert calls.row_count == 2 and phases.row_count == 5
        text = screen_text(pilot)
        assert "POST" in text and "/block/v1/zones/fr-par-1/snapshots" in text
        assert "2 calls" in text
        assert "transfer" in text
        await pilot.press("escape")
        assert type(app.screen).__name__ == "JobsScreen"
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_quit_while_a_job_runs_asks_first() -> None:
    app = make_app(FakeSession(step_delay=5.0))
    async with app.run_test(size=(100, 30)) as pilot:
        await open_fr_par_1(pilot)
        await pilot.press("down", "b", "y")
        await wait_for(pilot, lambda: views(app) and views(app)[0].state == RUNNING)
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert isinstance(app.screen, MainScreen) and app.is_running
        await pilot.press("ctrl+q", "y")
        await pilot.pause(0.2)
    assert app.return_code == 0
    assert views(app)[0].state == CANCELLED


async def test_help_lists_the_current_screen_bindings() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(pilot)
        assert "Back up" in text and "Restore" in text and "Mark" in text
        await pilot.press("escape")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen))
        await pilot.press("question_mark")
        text = screen_text(pilot)
        assert "Filter" in text and "Sort" in text and "Back up" not in text


async def test_jump_and_escape_back() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        for typed, screen in (("st", "StoreScreen"), ("j", "JobsScreen"),
                              ("se", "SettingsScreen")):
            await pilot.press("colon", *typed, "enter")
            await wait_for(pilot, lambda: type(app.screen).__name__ == screen, what=screen)
            assert len(app.screen_stack) == 3  # jumping never piles screens up
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("colon", "s", "t", "enter", "colon", "i", "enter")
        await pilot.pause(0.1)
        assert isinstance(app.screen, MainScreen)


async def test_palette_offers_the_screen_commands() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.1)
        names = [name for name, _, _ in commands_for(app.screen)]
        assert "Back up" in names and "Restore" in names
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen))
        names = [name for name, _, _ in commands_for(app.screen)]
        assert "Filter" in names and "Back up" not in names
        store = app.screen
        assert store.sort_reverse is True
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"reverse")

        def offered() -> str:  # the highlighted hit (the search runs in tasks: it comes late)
            hits = app.screen.query_one(CommandList)
            if hits.highlighted is None:
                return ""
            return str(hits.get_option_at_index(hits.highlighted).prompt)

        await wait_for(pilot, lambda: "everse" in offered(), what="the reverse command")
        await pilot.press("enter")
        await wait_for(pilot, lambda: store.sort_reverse is False, what="the order reversed")


async def test_store_filter_and_sort() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen))
        screen = app.screen
        table = screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        # newest first by default
        assert [r.value for r in table.rows] == ["c3d4e5f607182930", "b2c3d4e5f6071829",
                                                 "a1b2c3d4e5f60718"]
        await pilot.press("slash", "w", "e")  # typing filters as you go
        box = screen.query_one("#filter", Input)
        assert box.has_focus and table.row_count == 2
        for query, expected in (("date:2026-11-20", ["a1b2c3d4e5f60718"]),
                                ("tag:note=", ["c3d4e5f607182930"]),
                                ("volume:db- zone:fr-par-1", ["c3d4e5f607182930"]),
                                ("zone:nl-ams", [])):
            box.value = query
            await pilot.pause()
            assert [r.value for r in table.rows] == expected, query
            if query.startswith("tag"):
                assert "[b]loud[/b]" in screen_text(pilot)  # a tag full of markup, literally
        await pilot.press("escape")  # one esc leaves filter mode (k9s): cleared and closed
        assert table.row_count == 3 and table.has_focus and not box.has_class("shown")
        await pilot.press("s")  # by volume, a→z
        assert screen.sort_index == 1
        assert [r.value for r in table.rows][0] == "c3d4e5f607182930"  # db-[main]
        await pilot.press("S")
        assert [r.value for r in table.rows][-1] == "c3d4e5f607182930"
        await pilot.press("s", "s", "s", "s")  # new bytes, biggest first
        assert screen.sort_index == 5
        assert [r.value for r in table.rows] == ["c3d4e5f607182930", "a1b2c3d4e5f60718",
                                                 "b2c3d4e5f6071829"]
        text = screen_text(pilot)
        assert "sort new bytes ↓" in text and "verified" in text
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_restore_wizard_from_a_snapshot_ends_on_the_new_volume() -> None:
    session = FakeSession()
    app = make_app(session)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen))
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("down")  # b2c3… of web-data
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RestoreWizard))
        wizard = app.screen
        await wait_for(pilot, lambda: wizard.query_one("#project").value == session.projects[0].id)
        assert wizard.query_one("#zone").value == "fr-par-1"  # default: where it came from
        await pilot.press("ctrl+n")  # target → name
        name = wizard.query_one("#name-input", Input)
        assert name.value == "web-data-restored"
        name.value = "web-data"  # clashes with the original
        await pilot.press("enter")
        await wait_for(pilot, lambda: "already exists" in str(
            wizard.query_one("#name-check").render()))
        name.value = "web-[copy]"
        await pilot.press("enter")
        await wait_for(pilot, lambda: wizard.query_one("#size-input").has_focus)
        size = wizard.query_one("#size-input", Input)
        assert size.value == "20"
        size.value = "10"
        await pilot.press("enter")
        assert "at least 20 GB" in str(wizard.query_one("#size-check").render())
        size.value = "30"
        await pilot.press("enter")
        await wait_for(pilot, lambda: wizard.query_one("#iops-set").has_focus)
        await pilot.press("down", "enter", "ctrl+n")  # 15000
        await wait_for(pilot, lambda: wizard.checks_ok, what="preflight")
        text = screen_text(pilot)
        assert "new volume web-[copy]" in text and "strongroom-staging-fr-par [ok]" in text
        await pilot.press(*"web-[cop", "enter")  # wrong name: nothing happens
        assert wizard.job_id is None
        await pilot.press("]", "enter")  # now "web-[cop]"? no: still wrong
        assert wizard.job_id is None
        assert any("to confirm" in n.message for n in app._notifications)
        wizard.query_one("#confirm-input", Input).value = "web-[copy]"
        await pilot.press("enter")
        assert not any("to confirm" in n.message for n in app._notifications)  # answered
        await wait_for(pilot, lambda: wizard.job_id and app.jobs.view(wizard.job_id).state
                       == DONE)
        await wait_for(pilot, lambda: "vol-new00000" in screen_text(pilot), what="the new id")
        req = session.restored[0]  # the RestoreParams, back from the job's JSON spec
        assert (req.snapshot, req.name, req.zone, req.project_id, req.size, req.iops) == (
            "b2c3d4e5f6071829", "web-[copy]", "fr-par-1", session.projects[0].id,
            30_000_000_000, 15000)
        assert app.jobs.view(wizard.job_id).result["volume_id"] == "vol-new00000"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        tree = app.screen.query_one(InventoryTree)
        await wait_for(pilot, lambda: tree.cursor_node is not None and tree.cursor_node.data
                       .kind == "volume" and tree.cursor_node.data.obj.id == "vol-new00000",
                       what="cursor on the new volume")


async def test_restore_from_a_volume_lists_its_backups_only() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await open_fr_par_1(pilot)
        await pilot.press("down", "down")  # web-data
        await pilot.pause(0.2)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RestoreWizard))
        table = app.screen.query_one("#snap-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        await pilot.press("enter")
        assert app.screen.step == 1
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, MainScreen)


async def test_an_api_error_with_markup_shows_literally() -> None:
    session = FakeSession()

    async def failing(reporter: Reporter, params: BackupParams) -> None:
        reporter.phase("snapshot")
        raise RuntimeError("[red]denied[/red]: bucket [strongroom-x] says [b]no[/b]")

    session.backup = failing  # type: ignore[method-assign]
    app = make_app(session)
    async with app.run_test(size=(120, 30)) as pilot:
        await open_fr_par_1(pilot)
        await pilot.press("down", "b", "y")
        await wait_for(pilot, lambda: views(app) and views(app)[0].finished)
        assert views(app)[0].error.message.endswith("bucket [strongroom-x] says [b]no[/b]")
        await wait_for(pilot, lambda: "✖ failed" in screen_text(pilot), what="the failed row")
        text = screen_text(pilot)
        assert "[red]denied[/red]: bucket [strongroom-x] says [b]no[/b]" in text
        await pilot.press("j", "enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "JobDetailScreen")
        assert "[strongroom-x] says [b]no[/b]" in screen_text(pilot)


async def test_the_jobs_screen_lists_the_history_and_new_jobs_go_on_top() -> None:
    from engine.jobs import INTERRUPTED, JobEvent
    from tests.fixtures.tui import ReplayRunner
    from tui.screens.jobs import ALL_ROWS

    def job(i: int, state: str = DONE) -> list[JobEvent]:
        job_id, spec = f"{i:032x}", {"kind": "check", "params": {}, "title": f"check {i}"}
        error = {"message": "the daemon stopped", "type": "Interrupted", "exit_code": 1,
                 "traceback": ""}
        data = {"error": error} if state == INTERRUPTED else {"result": {}}
        return [JobEvent(job_id, 1, "submitted", "pending", data={"spec": spec}, time=1e9 + i),
                JobEvent(job_id, 2, "finished", state, data=data, time=1e9 + i + 1)]

    session = FakeSession()
    runner = ReplayRunner(session)
    app = StrongroomApp(session, AppSettings(theme="strongroom-dark"), runner=runner,
                        theme_dirs=[])
    async with app.run_test(size=(100, 30)) as pilot:
        for i in range(ALL_ROWS + 5):
            runner.replay(job(i, INTERRUPTED if i == ALL_ROWS + 3 else DONE))
        await pilot.press("j")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "JobsScreen")
        panel = app.screen.query_one(JobsPanel)
        await wait_for(pilot, lambda: len(panel.query(JobRow)) == ALL_ROWS, what="the rows")
        assert panel.border_subtitle == f"newest {ALL_ROWS} of {ALL_ROWS + 5}"
        await wait_for(pilot, lambda: "↯ interrupted  check 203" in screen_text(pilot))
        await pilot.press("down", "down")
        highlighted = panel.highlighted_child.job_id
        first_row = panel.query(JobRow).first()
        runner.replay(job(10_000))  # a new job: on top, without drawing every row again
        await wait_for(pilot, lambda: list(panel._rows())[0] == f"{10_000:032x}",
                       what="the new job on top")
        assert first_row in panel.query(JobRow)  # the old rows stay mounted
        assert panel.highlighted_child.job_id == highlighted  # the cursor stays on its job
        await wait_for(pilot, lambda: len(panel._rows()) == ALL_ROWS)
        assert panel.border_subtitle == f"newest {ALL_ROWS} of {ALL_ROWS + 6}"
