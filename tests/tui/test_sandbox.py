"""The app on the real engine: the Scaleway connector against the sandbox, a real store."""
from __future__ import annotations

from textual.widgets import DataTable, Input

from engine.jobs import DONE
from tests.tui.helpers import screen_text, tree_labels, wait_for
from tui.screens.confirm import ConfirmScreen
from tui.screens.explore import ExploreScreen
from tui.screens.store import StoreScreen
from tui.screens.main import MainScreen
from tui.screens.restore import RestoreWizard
from tui.widgets.inventory import InventoryTree


def same_data(a, b) -> bool:  # noqa: ANN001
    """Volumes are big sparse files: compare every data extent of the original (and that the
    copy has no data elsewhere would need a full read; the extents are what the seed wrote)."""
    import os

    with open(a, "rb") as fa, open(b, "rb") as fb:
        fd, pos, compared = fb.fileno(), 0, 0
        size = os.fstat(fd).st_size
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            fa.seek(start)
            fb.seek(start)
            if fa.read(end - start) != fb.read(end - start):
                return False
            compared += end - start
            pos = end
        return compared > 0


async def open_first_volume(pilot) -> InventoryTree:  # noqa: ANN001
    """org → first project → first zone → first volume, with the keyboard only."""
    tree = pilot.app.screen.query_one(InventoryTree)
    await wait_for(pilot, lambda: tree.root.children and tree.root.children[0].data.kind
                   == "project", what="projects")
    await pilot.press("down", "enter")
    await wait_for(pilot, lambda: any(c.data.kind == "zone" for c in tree.root.children[0]
                                      .children), what="zones")
    await pilot.press("down", "enter")
    await wait_for(pilot, lambda: any(c.data.kind == "volume" for c in tree.root.children[0]
                                      .children[0].children), what="volumes")
    await pilot.press("down")
    assert tree.cursor_node.data.kind == "volume"
    return tree


async def test_tree_lists_the_sandbox_organization(engine_app, sandbox) -> None:
    app = engine_app()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = await open_first_volume(pilot)
        labels = tree_labels(tree)
        assert labels[0] == f"⌂ {sandbox.organization_id}"
        projects = [x for x in labels if x.startswith("▣ ")]
        assert len(projects) >= 2
        vol = tree.cursor_node.data.obj
        # the store opens in a thread at start (a key derivation: slow on a loaded machine)
        await wait_for(pilot, lambda: "backups in the store: 0" in screen_text(pilot),
                       what="the volume's backups")
        text = screen_text(pilot)
        assert vol.id[:20] in text.replace("\n", "") or vol.id[:8] in text
        # up and down again: the cursor walks the loaded levels
        await pilot.press("up", "up", "up")
        assert tree.cursor_node.data.kind == "org"


async def test_backup_then_restore_through_the_wizard(engine_app, sandbox) -> None:
    app = engine_app()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = await open_first_volume(pilot)
        vol = tree.cursor_node.data.obj
        await pilot.press("b")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: app.jobs.views() and app.jobs.views()[0].finished,
                       timeout=120, what="backup")
        job = app.jobs.views()[0]
        assert job.state == DONE, job.error
        assert job.kind == "backup" and job.params["volume_id"] == vol.id
        assert job.result["volume_id"] == vol.id and job.result["stored_bytes"] > 0
        assert [p.name for p in job.phases][:3] == ["snapshot", "export", "transfer"]
        assert any(c["method"] == "POST" and "/snapshots" in c["path"]
                   for c in job.calls.recent)
        await wait_for(pilot, lambda: "backups in the store: 1" in screen_text(pilot),
                       what="the new backup in the detail pane")
        await wait_for(pilot, lambda: "✔ done" in screen_text(pilot), what="the done job row")

        # the store screen lists it, and `e` explores inside it
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen))
        snaps = app.screen.query_one("#snapshots", DataTable)
        await wait_for(pilot, lambda: snaps.row_count == 1, what="the snapshot in the store")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExploreScreen))
        files = app.screen.query_one("#file-list", DataTable)
        await wait_for(pilot, lambda: files.row_count > 0 or "error" in screen_text(pilot)
                       .lower(), timeout=30, what="the files inside the backup")
        explored = screen_text(pilot)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        assert files.row_count > 0, explored

        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RestoreWizard))
        wizard = app.screen
        table = wizard.query_one("#snap-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        await pilot.press("enter")  # the snapshot → target, defaulting to the original
        await wait_for(pilot, lambda: wizard.query_one("#project").value == vol.project_id,
                       what="projects")
        assert wizard.query_one("#zone").value == vol.zone
        await pilot.press("ctrl+n")
        name = wizard.query_one("#name-input", Input)
        name.value = vol.name  # clash with the original
        await pilot.press("enter")
        await wait_for(pilot, lambda: "already exists" in str(
            wizard.query_one("#name-check").render()), what="clash check")
        new_name = "restored-by-tui"
        name.value = new_name
        await pilot.press("enter")
        await wait_for(pilot, lambda: wizard.query_one("#size-input").has_focus, what="size")
        await pilot.press("enter")  # the original size
        await wait_for(pilot, lambda: wizard.query_one("#iops-set").has_focus)
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: "preflight" in str(wizard.query_one("#preflight")
                                                          .render()) and "⋯" not in str(
            wizard.query_one("#preflight").render()), what="preflight", timeout=30)
        assert wizard.checks_ok, str(wizard.query_one("#preflight").render())
        wizard.query_one("#confirm-input", Input).value = new_name
        await pilot.press("enter")
        await wait_for(pilot, lambda: wizard.job_id and app.jobs.view(wizard.job_id).finished,
                       timeout=120, what="restore")
        rjob = app.jobs.view(wizard.job_id)
        assert rjob.state == DONE, rjob.error
        new_id = rjob.result["volume_id"]
        await wait_for(pilot, lambda: new_id in screen_text(pilot), what="the new volume's id")
        # the sandbox holds the same bytes in the new volume
        assert same_data(sandbox.volume_path(new_id), sandbox.volume_path(vol.id))
        await pilot.press("enter")  # jump to it
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await wait_for(pilot, lambda: tree.cursor_node.data.kind == "volume"
                       and tree.cursor_node.data.obj.id == new_id,
                       what="cursor on the new volume")
        assert new_name in screen_text(pilot)


async def test_policy_states_on_the_real_engine(engine_app, sandbox) -> None:
    """The survey on a real Session and store (its verification records read): with a policy
    for every volume and an empty store, every backupable volume is overdue."""
    from engine.settings import load_settings, settings_path

    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[policies.all]\nmatch = { volume = "*" }\nevery = "24h"\n',
                    encoding="utf-8")
    app = engine_app()
    app.session.settings = load_settings(path)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = await open_first_volume(pilot)
        await wait_for(pilot, lambda: app.policy_facts is not None, timeout=60,
                       what="the survey")
        assert app.policy_facts.active, app.policy_facts.problem
        vol = tree.cursor_node.data.obj
        want = "✖ overdue" if vol.backupable else "⊘ not backupable"
        await wait_for(pilot, lambda: want in str(tree.cursor_node.label), what=want)
