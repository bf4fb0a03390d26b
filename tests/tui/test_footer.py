"""At 80x24 the footer ends with the palette key: no letter of a key hidden under it shows
after it (the store screen's overflowing footer read "…▏^p palettet")."""
from __future__ import annotations

from tests.fixtures.tui import FakeSession
from tests.tui.helpers import screen_text, wait_for
from tui.app import StrongroomApp
from tui.screens.jobs import JobsScreen
from tui.screens.main import MainScreen
from tui.screens.store import StoreScreen
from tui.settings import AppSettings


async def test_the_footer_ends_with_the_palette_key_on_every_view() -> None:
    app = StrongroomApp(FakeSession(), AppSettings(theme="strongroom-dark"), theme_dirs=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="main screen")
        footers = {}
        for key, screen in (("s", StoreScreen), ("j", JobsScreen)):
            await pilot.press(key)
            await wait_for(pilot, lambda: isinstance(app.screen, screen), what=key)
            await pilot.press("j")  # in a list: a move down, the footer drawn again
            await pilot.pause(0.3)
            footers[key] = screen_text(pilot).splitlines()[-1]
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="back")
        footers["main"] = screen_text(pilot).splitlines()[-1]
    for where, line in footers.items():
        assert line.rstrip().endswith("▏^p palette"), (where, line)
