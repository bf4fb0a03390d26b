"""The restore wizard by keyboard: enter goes on at every step, the review page fits 80x24
with a one-line preflight summary beside the confirm box, the current step is marked by more
than colour, and quitting says what a cancelled restore leaves."""
from __future__ import annotations

from textual.widgets import Input

from engine.jobs import RUNNING
from engine.scaleway.preflight import MISSING, OK, UNVERIFIED, CheckResult
from tests.fixtures.tui import FakeSession
from tests.tui.helpers import screen_text, wait_for
from tui.app import StrongroomApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.restore import RestoreWizard
from tui.settings import AppSettings

NAME = "web-data-restored"


def make_app(session: FakeSession) -> StrongroomApp:
    return StrongroomApp(session, AppSettings(theme="strongroom-dark"), theme_dirs=[])


async def wizard_for_web_data(pilot) -> RestoreWizard:  # noqa: ANN001
    """The wizard as the inventory opens it for a volume: from the first step."""
    app = pilot.app
    await pilot.pause(0.1)
    volume = next(v for v in app.session.volumes if v.name == "web-data")
    await app.push_screen(RestoreWizard(volume=volume))
    await wait_for(pilot, lambda: isinstance(app.screen, RestoreWizard), what="wizard")
    wizard = app.screen
    await wait_for(pilot, lambda: wizard.query_one("#snap-table").row_count > 0,
                   what="the volume's backups")
    return wizard


def page(wizard: RestoreWizard) -> str:
    from textual.widgets import ContentSwitcher

    return str(wizard.query_one("#pages", ContentSwitcher).current)


async def test_enter_goes_on_at_every_step() -> None:
    session = FakeSession()
    app = make_app(session)
    async with app.run_test(size=(100, 32)) as pilot:
        wizard = await wizard_for_web_data(pilot)
        assert page(wizard) == "snapshot"
        await pilot.press("enter")
        await wait_for(pilot, lambda: page(wizard) == "target", what="target")
        await wait_for(pilot, lambda: str(wizard.query_one("#project").value).startswith("1111"),
                       what="the original project")
        await pilot.press("enter")                    # a Select: enter goes on, not opens it
        await wait_for(pilot, lambda: page(wizard) == "name", what="name")
        await pilot.press("enter")                    # name checked free, then on
        await wait_for(pilot, lambda: page(wizard) == "size", what="size")
        await pilot.press("enter")
        await wait_for(pilot, lambda: page(wizard) == "iops", what="IOPS")
        await pilot.press("down", "enter")            # the highlighted class is the one taken
        await wait_for(pilot, lambda: page(wizard) == "review", what="review")
        await wait_for(pilot, lambda: wizard.checks_ok, what="preflight")
        assert wizard.params is not None and wizard.params.iops == 15000
        assert "IOPS       15000" in screen_text(pilot)
        wizard.query_one("#confirm-input", Input).value = NAME
        await pilot.press("enter")
        await wait_for(pilot, lambda: page(wizard) == "progress", what="progress")
        await wait_for(pilot, lambda: [p.name for p in session.restored] == [NAME],
                       what="the restore")
        assert session.restored[0].iops == 15000


async def test_the_current_step_is_marked_not_only_coloured() -> None:
    app = make_app(FakeSession())
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await wizard_for_web_data(pilot)
        text = screen_text(pilot)                     # no colours in this text
        assert "▶ Snapshot" in text and "step 1 of 7" in text
        await pilot.press("enter")
        await wait_for(pilot, lambda: page(wizard) == "target", what="target")
        text = screen_text(pilot)
        assert "✔ Snapshot" in text and "▶ Target" in text and "step 2 of 7" in text


async def review_at_80x24(pilot, wizard: RestoreWizard) -> None:  # noqa: ANN001
    await pilot.press("enter")
    await wait_for(pilot, lambda: page(wizard) == "target", what="target")
    await wait_for(pilot, lambda: str(wizard.query_one("#project").value).startswith("1111"),
                   what="the original project")
    await pilot.press("enter", "enter")
    await wait_for(pilot, lambda: page(wizard) == "size", what="size")
    await pilot.press("enter", "enter")
    await wait_for(pilot, lambda: page(wizard) == "review", what="review")
    await wait_for(pilot, lambda: "⋯" not in str(wizard.query_one("#preflight-summary").render()),
                   what="preflight")
    await pilot.pause(0.1)


def shown_whole(wizard: RestoreWizard, selector: str) -> bool:
    """The widget lies inside the page's visible area (nothing of it scrolled away)."""
    area = wizard.query_one("#pages").content_region
    region = wizard.query_one(selector).region
    return bool(region) and area.contains_region(region)


async def test_review_fits_80x24_with_a_preflight_summary() -> None:
    app = make_app(FakeSession())
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await wizard_for_web_data(pilot)
        await review_at_80x24(pilot, wizard)
        for part in ("#review-text", "#confirm-input", "#preflight-summary"):
            assert shown_whole(wizard, part), part
        text = screen_text(pilot)
        assert "via bucket" in text and "new volume web-data-restored" in text
        assert "✔ preflight 2/2 ok" in text
        assert "Type the new volume's name to confirm" in text


async def test_review_summary_says_what_is_missing() -> None:
    checks = [CheckResult("credentials", OK, "key works"),
              CheckResult("permissions", UNVERIFIED, "cannot read the key's IAM policies"),
              CheckResult("bucket", MISSING, "strongroom-staging-fr-par does not exist",
                          "create it in fr-par")]
    app = make_app(FakeSession(checks=checks))
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await wizard_for_web_data(pilot)
        await review_at_80x24(pilot, wizard)
        assert shown_whole(wizard, "#preflight-summary")
        summary = str(wizard.query_one("#preflight-summary").render())
        assert "✖ preflight 1/3 ok; missing: bucket; unsure: permissions" in summary
        assert not wizard.checks_ok


async def test_quitting_says_what_a_cancelled_restore_leaves() -> None:
    session = FakeSession(step_delay=30.0)  # still uploading when asked, however slow the machine
    app = make_app(session)
    async with app.run_test(size=(100, 32)) as pilot:
        wizard = await wizard_for_web_data(pilot)
        await review_at_80x24(pilot, wizard)
        wizard.query_one("#confirm-input", Input).value = NAME
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(v.state == RUNNING for v in app.jobs.running),
                       what="the restore running")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        text = " ".join(str(app.screen.query_one("#detail").render()).split())
        assert "deletes its staging object, its imported snapshot and the volume it is " \
               "creating; nothing stays" in text, text
        await pilot.press("n")
        assert app.is_running
        await pilot.press("ctrl+q", "y")                 # cancelled, and the app ends
        await pilot.pause(0.2)
    assert app.return_code == 0


def test_what_a_restore_cancelled_late_leaves() -> None:
    """Once its volume is made (the cleanup phase), a cancelled restore keeps it."""
    from engine.jobs import JobView
    from tui.screens.confirm import cancel_consequences

    said = cancel_consequences([
        JobView("1", kind="restore", title="restore → db", phase="cleanup"),
        JobView("2", kind="backup", title="backup web", phase="export")])
    assert "restore → db: its new volume is created and stays; cancelling now deletes its " \
           "staging object and its imported snapshot." in said
    assert "A cancelled backup leaves no snapshot in the store." in said


class FailingPreflight(FakeSession):
    def preflight(self, project_id: str | None = None, zone: str | None = None,
                  bucket: str | None = None):  # noqa: ANN201
        raise RuntimeError("denied [bold]x[/] by policy")


async def test_review_summary_shows_an_api_error_literally() -> None:
    app = make_app(FailingPreflight())
    async with app.run_test(size=(80, 24)) as pilot:
        wizard = await wizard_for_web_data(pilot)
        await review_at_80x24(pilot, wizard)
        summary = " ".join(str(wizard.query_one("#preflight-summary").render()).split())
        assert "✖ preflight failed: denied [bold]x[/] by policy" in summary
        assert not wizard.checks_ok
