"""The demo's app opens at once and says that its sandbox is starting; keys typed meanwhile are
dropped; the main screen comes when the sandbox is ready, or the app ends saying why not."""
from __future__ import annotations

from concurrent.futures import Future

from tests.fixtures.tui import FakeSession
from tests.tui.helpers import screen_text, wait_for
from tui.app import StrongroomApp
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.starting import StartingScreen
from tui.settings import AppSettings


def starting_app(ready: Future[object]) -> StrongroomApp:
    return StrongroomApp(FakeSession(), AppSettings(theme="strongroom-dark"), theme_dirs=[],
                         starting=("Starting the sandbox…", ready))


async def test_keys_typed_while_starting_are_dropped() -> None:
    ready: Future[object] = Future()
    app = starting_app(ready)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartingScreen), what="starting")
        assert "Starting the sandbox…" in screen_text(pilot)
        await pilot.press("question_mark", "colon", "slash", "x", "b", "enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, StartingScreen)  # no help, no jump, no filter
        ready.set_result(None)
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="main screen")
        await wait_for(pilot, lambda: "production" in screen_text(pilot), what="inventory")
        await pilot.pause(0.2)
        assert isinstance(app.screen, MainScreen) and len(app.screen_stack) == 2
        assert app.jobs.views() == []  # the "b" typed early started nothing
        await pilot.press("question_mark")  # keys work once ready
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")


async def test_a_failed_start_ends_the_app_saying_why(capsys) -> None:  # noqa: ANN001
    ready: Future[object] = Future()
    app = starting_app(ready)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartingScreen), what="starting")
        ready.set_exception(RuntimeError("moto server exited\nwith code 1"))
        await wait_for(pilot, lambda: app.return_code is not None, what="the app to end")
    assert app.return_code == 1
    said = capsys.readouterr().err
    assert said.strip().endswith("strongroom: error: moto server exited with code 1"), said
