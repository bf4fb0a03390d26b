"""Snapshot tests of the main screens at 80x24 and 120x40, on fixed data.

Deterministic by construction: a FakeSession with fixed data, jobs replayed from events with
fixed times, no clock in the header, no blinking cursors. Update the baselines with `pytest --snapshot-update` after
looking at the SVGs.
"""
from __future__ import annotations

import pytest

from engine.jobs import DONE, RUNNING, JobEvent, to_plain
from engine.scaleway.flows import BackupOutcome
from tests.fixtures.tui import FakeSession, ReplayRunner
from tests.tui.helpers import steady, tree_labels, wait_for
from tui.app import StrongroomApp
from tui.settings import AppSettings
from tui.widgets.inventory import InventoryTree

SIZES = [(80, 24), (120, 40)]
T0 = 1_795_000_000.0  # a fixed moment, so durations and clocks never move
RUNNING_ID, DONE_ID = "2" * 32, "1" * 32


def _job(job_id: str, title: str, created: float,
         steps: list[tuple[str, float, dict]]) -> list[JobEvent]:
    """A backup's events, numbered: (kind, time, fields) after its submission and start."""
    spec = {"kind": "backup", "params": {}, "title": title}
    events = [JobEvent(job_id, 1, "submitted", "pending", data={"spec": spec}, time=created),
              JobEvent(job_id, 2, "state", RUNNING, time=created)]
    for kind, when, fields in steps:
        state = fields.pop("state", RUNNING)
        events.append(JobEvent(job_id, len(events) + 1, kind, state, time=when, **fields))
    return events


def fixed_jobs() -> list[list[JobEvent]]:
    calls = [("POST", "/block/v1/zones/fr-par-1/snapshots", 200, 85.2),
             ("GET", "/block/v1/zones/fr-par-1/snapshots/6c1f…", 200, 12.0),
             ("POST", "/block/v1/zones/fr-par-1/snapshots/6c1f…/export-to-object-storage",
              200, 40.3),
             ("HEAD", "/strongroom-staging-fr-par/strongroom-tmp/[weird].qcow2", 200, 8.8),
             ("GET", "/strongroom-staging-fr-par/strongroom-tmp/[weird].qcow2", 206, 301.0)]
    running = _job(RUNNING_ID, "backup db-[main]", T0 + 60, [
        ("phase", T0 + 60, {"phase": "snapshot"}),
        ("phase", T0 + 64, {"phase": "export"}),
        ("phase", T0 + 95, {"phase": "transfer", "bytes_total": 50_000_000_000}),
        *[("call", T0 + 60 + i, {"phase": "transfer", "data": {
            "method": m, "path": p, "status": st, "ms": ms}})
          for i, (m, p, st, ms) in enumerate(calls)],
        ("progress", T0 + 150, {"phase": "transfer", "bytes_done": 12_000_000_000,
                                "bytes_total": 50_000_000_000, "rate": 180_000_000.0,
                                "data": {"stored_bytes": 1_500_000_000}})])
    outcome = BackupOutcome("vol-00000001", "web-data", "fr-par-1", "b2c3d4e5f6071829",
                            20_000_000_000, 90_000_000, 41.0, "6c1f")
    done = _job(DONE_ID, "backup web-data", T0, [
        ("phase", T0, {"phase": "snapshot"}),
        ("phase", T0 + 3, {"phase": "export"}),
        ("phase", T0 + 20, {"phase": "transfer", "bytes_total": 20_000_000_000}),
        ("progress", T0 + 40, {"phase": "transfer", "bytes_done": 20_000_000_000,
                               "bytes_total": 20_000_000_000, "rate": 1e9,
                               "data": {"stored_bytes": 80_000_000}}),
        ("phase", T0 + 40, {"phase": "cleanup"}),
        ("finished", T0 + 41, {"state": DONE, "phase": "cleanup",
                               "data": {"result": to_plain(outcome)}})])
    return [running, done]


# the backups' ages on the main screen count from here: db-[main] 5h, web-data 29h (stale)
AGES_FROM = 1_795_420_800.0  # 2026-11-23 08:00 UTC


def app_with_jobs(clock: float = T0 + 200) -> StrongroomApp:
    session = FakeSession()
    app = StrongroomApp(session, AppSettings(theme="strongroom-dark"),
                        runner=ReplayRunner(session), theme_dirs=[])
    app.clock = lambda: clock
    return app


async def seed_jobs(pilot) -> None:  # noqa: ANN001
    app = pilot.app
    for events in fixed_jobs():
        app._announced.add(events[0].job_id)  # no "done" toast over the screenshot
        app.jobs.runner.replay(events)
    # the panel takes them at its next refresh tick: wait for the rows, however late that is
    await wait_for(pilot, lambda: len(app.screen.query("JobRow")) == 2
                   and all(str(label.render()) for label in app.screen.query(".headline")),
                   what="both job rows")
    await pilot.pause(0.1)


async def open_tree(pilot) -> None:  # noqa: ANN001
    tree = pilot.app.screen.query_one(InventoryTree)
    await wait_for(pilot, lambda: "▣ production" in tree_labels(tree))
    await pilot.press("down", "enter")
    await wait_for(pilot, lambda: "◇ fr-par-1" in tree_labels(tree))
    await pilot.press("down", "enter")
    await wait_for(pilot, lambda: any("web-data" in x for x in tree_labels(tree)))
    await pilot.press("down", "down")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)


async def store_loaded(pilot) -> None:  # noqa: ANN001
    """The store screen is up with its three snapshots listed."""
    from textual.widgets import DataTable

    await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "StoreScreen")
    await pilot.app.workers.wait_for_complete()
    await wait_for(pilot, lambda: pilot.app.screen.query_one(DataTable).row_count == 3,
                   what="the snapshots")
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(snap_compare, size) -> None:  # noqa: ANN001
    async def before(pilot) -> None:  # noqa: ANN001
        await open_tree(pilot)
        await seed_jobs(pilot)

    assert snap_compare(app_with_jobs(AGES_FROM), terminal_size=size, run_before=before)


async def everything_listed(pilot) -> None:  # noqa: ANN001
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.model.complete and screen.model.store_known,
                   what="the whole inventory and the store")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_volume_table(snap_compare, size) -> None:  # noqa: ANN001
    async def before(pilot) -> None:  # noqa: ANN001
        await everything_listed(pilot)
        await seed_jobs(pilot)
        await pilot.press("v", "o", "o", "o", "o", "o", "o")  # every volume, by state
        await pilot.pause(0.2)

    assert snap_compare(app_with_jobs(AGES_FROM), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_inventory_filtered(snap_compare, size) -> None:  # noqa: ANN001
    async def before(pilot) -> None:  # noqa: ANN001
        await everything_listed(pilot)
        await seed_jobs(pilot)
        await pilot.press("slash", *"zone:fr-par tag:", "enter")
        await pilot.pause(0.2)

    assert snap_compare(app_with_jobs(AGES_FROM), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_volume_backups(snap_compare, size) -> None:  # noqa: ANN001
    async def before(pilot) -> None:  # noqa: ANN001
        await open_tree(pilot)
        await pilot.press("enter")  # web-data's backups
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "StoreScreen")
        await pilot.app.workers.wait_for_complete()
        await wait_for(pilot, lambda: pilot.app.screen.query_one("DataTable").row_count == 2)
        steady(pilot.app)
        await pilot.pause(0.2)

    assert snap_compare(app_with_jobs(AGES_FROM), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_store_screen(snap_compare, size) -> None:  # noqa: ANN001
    async def before(pilot) -> None:  # noqa: ANN001
        await pilot.pause(0.1)
        await pilot.press("s")
        await store_loaded(pilot)
        await pilot.press("down")

    assert snap_compare(app_with_jobs(), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_restore_wizard_review(snap_compare, size) -> None:  # noqa: ANN001
    async def before(pilot) -> None:  # noqa: ANN001
        await pilot.pause(0.1)
        await pilot.press("s")
        await store_loaded(pilot)
        await pilot.press("down", "r")
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "RestoreWizard")
        wizard = pilot.app.screen
        await wait_for(pilot, lambda: wizard.query_one("#project").value is not None
                       and str(wizard.query_one("#project").value).startswith("1111"))
        await pilot.press("ctrl+n", "enter")
        await wait_for(pilot, lambda: wizard.query_one("#size-input").has_focus)
        await pilot.press("enter")
        await wait_for(pilot, lambda: wizard.query_one("#iops-set").has_focus)
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: wizard.checks_ok)
        steady(pilot.app)
        await pilot.pause(0.2)

    assert snap_compare(app_with_jobs(), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_job_detail(snap_compare, size) -> None:  # noqa: ANN001
    async def before(pilot) -> None:  # noqa: ANN001
        await pilot.pause(0.1)
        await seed_jobs(pilot)
        from tui.screens.jobs import JobDetailScreen

        await pilot.app.push_screen(JobDetailScreen(RUNNING_ID))
        await pilot.pause(0.3)

    assert snap_compare(app_with_jobs(), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_settings_screen(snap_compare, size, monkeypatch) -> None:  # noqa: ANN001
    from pathlib import Path

    import tui.settings

    monkeypatch.setattr(tui.settings, "config_path",
                        lambda: Path("/home/you/.config/strongroom/settings.toml"))
    async def before(pilot) -> None:  # noqa: ANN001
        await pilot.pause(0.1)
        await pilot.press("colon", *"set", "enter")
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "SettingsScreen")
        await pilot.pause(0.2)
        steady(pilot.app)
        await pilot.pause(0.1)

    assert snap_compare(app_with_jobs(), terminal_size=size, run_before=before)


def test_help_over_main_screen(snap_compare) -> None:  # noqa: ANN001
    async def before(pilot) -> None:  # noqa: ANN001
        await pilot.pause(0.1)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "HelpScreen")
        await pilot.pause(0.2)

    assert snap_compare(app_with_jobs(), terminal_size=(80, 24), run_before=before)
