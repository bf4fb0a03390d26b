"""The restore wizard's review page acts on the engine's own preflight verdict.

A check that could not be verified (a key without IAM read rights cannot see its own
permissions) warns but lets the restore go ahead; a check that found a problem blocks it.
"""
from __future__ import annotations

from textual.widgets import DataTable, Input

from engine.jobs import DONE
from engine.scaleway.preflight import MISSING, OK, UNVERIFIED, CheckResult
from tests.fixtures.tui import FakeSession
from tests.tui.helpers import screen_text, wait_for
from tui.app import StrongroomApp
from tui.screens.restore import RestoreWizard
from tui.screens.store import StoreScreen
from tui.settings import AppSettings

NAME = "web-data-restored"  # the wizard's default name for a backup of web-data


async def review_page(pilot) -> RestoreWizard:  # noqa: ANN001
    """From the store screen to the wizard's review page, defaults everywhere."""
    app = pilot.app
    await pilot.pause(0.1)
    await pilot.press("s")
    await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen))
    table = app.screen.query_one(DataTable)
    await wait_for(pilot, lambda: table.row_count == 3, what="the snapshots")
    await pilot.press("down", "r")  # b2c3… of web-data
    await wait_for(pilot, lambda: isinstance(app.screen, RestoreWizard))
    wizard = app.screen
    await wait_for(pilot, lambda: str(wizard.query_one("#project").value).startswith("1111"),
                   what="the original project chosen")
    await pilot.press("ctrl+n", "enter")  # target → name (free) → size
    await wait_for(pilot, lambda: wizard.query_one("#size-input").has_focus, what="size")
    await pilot.press("enter")
    await wait_for(pilot, lambda: wizard.query_one("#iops-set").has_focus, what="IOPS")
    await pilot.press("ctrl+n")
    await wait_for(pilot, lambda: "⋯" not in str(wizard.query_one("#preflight").render()),
                   what="preflight")
    return wizard


async def test_an_unverified_check_warns_and_the_restore_can_go_ahead() -> None:
    session = FakeSession(checks=[
        CheckResult("credentials", OK, "key works"),
        CheckResult("permissions", UNVERIFIED, "cannot read the key's IAM policies: denied",
                    "grant IAMReadOnly to see them"),
        CheckResult("bucket", OK, "strongroom-staging-fr-par")])
    app = StrongroomApp(session, AppSettings(theme="strongroom-dark"), theme_dirs=[])
    async with app.run_test(size=(100, 40)) as pilot:
        wizard = await review_page(pilot)
        text = screen_text(pilot)
        assert "? unsure" in text and "permissions" in text, text
        assert "could not be verified" in text  # said, not hidden
        assert "fix the failures" not in text
        assert wizard.checks_ok
        wizard.query_one("#confirm-input", Input).value = NAME
        await pilot.press("enter")
        await wait_for(pilot, lambda: wizard.job_id is not None
                       and app.jobs.view(wizard.job_id).state == DONE, what="the restore")
        assert [p.name for p in session.restored] == [NAME]


async def test_a_missing_check_still_blocks_the_restore() -> None:
    session = FakeSession(checks=[
        CheckResult("credentials", OK, "key works"),
        CheckResult("permissions", UNVERIFIED, "cannot read the key's IAM policies: denied"),
        CheckResult("bucket", MISSING, "strongroom-staging-fr-par does not exist",
                    "create it in fr-par")])
    app = StrongroomApp(session, AppSettings(theme="strongroom-dark"), theme_dirs=[])
    async with app.run_test(size=(100, 40)) as pilot:
        wizard = await review_page(pilot)
        text = screen_text(pilot)
        assert "✖ failed" in text and "does not exist" in text and "create it in fr-par" in text
        assert "fix the failures" in text
        assert not wizard.checks_ok
        wizard.query_one("#confirm-input", Input).value = NAME
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert wizard.job_id is None and session.restored == []
