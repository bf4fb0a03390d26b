"""The command palette's theme choice is saved like the settings screen's; the settings screen
names the profile the header names ("demo" in the demo, not "default")."""
from __future__ import annotations

from textual.command import CommandPalette
from textual.widgets import Input

from engine.settings import Settings, load_settings, save_settings
from tests.fixtures.tui import FakeSession
from tests.tui.helpers import wait_for
from tui import settings as settings_mod
from tui.app import StrongroomApp
from tui.screens.settings import SettingsScreen
from tui.settings import AppSettings


async def test_a_theme_chosen_in_the_palette_is_saved() -> None:
    save_settings(Settings(store_url="s3://kept/prefix", buckets={"fr-par": "mine"}))
    app = StrongroomApp(FakeSession(), AppSettings(theme="strongroom-dark"), theme_dirs=[])
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.1)
        app.action_change_theme()  # what ctrl+p → "Theme" runs
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"strongroom-light")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.theme == "strongroom-light", what="the theme")
    saved = load_settings()
    assert saved.theme == "strongroom-light"
    # only the theme changed in the file
    assert saved.store_url == "s3://kept/prefix" and saved.buckets == {"fr-par": "mine"}
    again = StrongroomApp(FakeSession(), settings_mod.load(), theme_dirs=[])
    async with again.run_test(size=(100, 30)):
        assert again.theme == "strongroom-light"


async def test_the_settings_screen_names_the_sessions_profile() -> None:
    session = FakeSession()
    session.label = "demo"
    app = StrongroomApp(session, AppSettings(theme="strongroom-dark"), theme_dirs=[])
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("colon", "s", "e", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")
        assert app.screen.query_one("#profile", Input).placeholder == "demo"
        assert "demo" in app.sub_title
