"""Settings saved and reloaded; themes as data with a friendly fallback; the job pump."""
from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import Input, Select

from engine.jobs import DONE, JobSpec, Reporter
from engine.scaleway.flows import BackupOutcome
from tests.fixtures.tui import FakeSession
from tests.tui.helpers import wait_for
from tui import settings as settings_mod
from tui.app import REFRESH_HZ, StrongroomApp
from tui.screens.settings import SettingsScreen
from tui.settings import AppSettings
from tui.themes import ANSI_THEME, VARIABLE_DEFAULTS, default_theme_name, load_themes


async def test_settings_saved_and_reloaded() -> None:
    app = StrongroomApp(FakeSession(), AppSettings(theme="strongroom-dark"), theme_dirs=[])
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("colon", "s", "e", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
        screen = app.screen
        screen.query_one("#profile", Input).value = "prod"
        screen.query_one("#store", Input).value = "s3://backups/strongroom"
        screen.query_one("#bucket-nl-ams", Input).value = "my-[ams]-bucket"
        screen.query_one("#theme", Select).value = "strongroom-light"
        # previewed before saving (once the app has handled the change: a loaded machine
        # may take more than a fixed pause)
        await wait_for(pilot, lambda: app.theme == "strongroom-light", what="the preview")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.session.bucket_for("nl-ams-2") == "my-[ams]-bucket",
                       what="the saved bucket in use")
    text = settings_mod.config_path().read_text()
    assert 'store_url = "s3://backups/strongroom"' in text
    loaded = settings_mod.load()
    assert loaded == AppSettings(profile="prod", store="s3://backups/strongroom",
                                 theme="strongroom-light", buckets={"nl-ams": "my-[ams]-bucket"})
    # a new app starts with what was saved
    again = StrongroomApp(FakeSession(), settings_mod.load(), theme_dirs=[])
    async with again.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon", "s", "e", "enter")
        await wait_for(pilot, lambda: isinstance(again.screen, SettingsScreen))
        assert again.theme == "strongroom-light"
        assert again.screen.query_one("#bucket-nl-ams", Input).value == "my-[ams]-bucket"
        assert again.screen.query_one("#profile", Input).value == "prod"


def test_our_four_themes_load_and_set_every_app_variable() -> None:
    themes = load_themes([])
    assert themes.problems == []
    names = set(themes.themes)
    assert {"strongroom-dark", "strongroom-light", "strongroom-high-contrast",
            ANSI_THEME} <= names
    assert themes.themes["strongroom-light"].dark is False
    assert themes.themes[ANSI_THEME].ansi is True
    for theme in themes.themes.values():
        assert set(VARIABLE_DEFAULTS) <= set(theme.variables), theme.name


def test_ansi_theme_under_no_color_and_on_16_colour_terminals(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLORTERM", "truecolor")
    assert default_theme_name() == "strongroom-dark"
    monkeypatch.setenv("NO_COLOR", "1")
    assert default_theme_name() == ANSI_THEME
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.delenv("COLORTERM")
    monkeypatch.setenv("TERM", "xterm")
    assert default_theme_name() == ANSI_THEME
    monkeypatch.setenv("TERM", "xterm-256color")
    assert default_theme_name() == "strongroom-dark"


async def test_user_theme_added_and_broken_one_falls_back(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#ff8800"\n'
                                        '[variables]\nsr-ok = "#00ff00"\n')
    (tmp_path / "broken.toml").write_text('name = "broken"\nprimary = "not-a-colour"\n')
    (tmp_path / "garbage.toml").write_text("this is [not toml")
    themes = load_themes([tmp_path])
    assert "mine" in themes.themes and "broken" not in themes.themes
    assert len(themes.problems) == 2 and any("not-a-colour" in p for p in themes.problems)

    app = StrongroomApp(FakeSession(), AppSettings(theme="broken"), theme_dirs=[tmp_path])
    messages: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: any("'broken' not found" in n.message
                                          for n in app._notifications), what="the fallback")
        messages = [n.message for n in app._notifications]
        assert app.theme == default_theme_name()  # fell back, and said so
        app.theme = "mine"
        await wait_for(pilot, lambda: app.theme_variables.get("sr-ok") == "#00ff00",
                       what="the user theme applied")
        # an app variable the theme leaves out still has a value
        assert app.theme_variables["sr-warn"] == VARIABLE_DEFAULTS["sr-warn"]
        assert app.theme_variables["sr-ok"] == "#00ff00"
    assert any("'broken' not found" in m for m in messages)
    assert sum("theme skipped" in m for m in messages) == 2


async def test_job_events_are_coalesced_into_at_most_ten_refreshes_a_second() -> None:
    app = StrongroomApp(FakeSession(), AppSettings(theme="strongroom-dark"), theme_dirs=[])
    refreshes: list[set[str]] = []
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.1)
        panel = app.screen.query_one("#jobs")
        original = panel.jobs_changed
        panel.jobs_changed = lambda ids: (refreshes.append(set(ids)), original(ids))

        async def chatty(reporter: Reporter) -> BackupOutcome:
            reporter.phase("transfer", total=100_000)
            for i in range(20_000):  # thousands of calls, from the loop and a worker thread
                reporter.progress(i * 5, stored_bytes=i)
                if i % 2000 == 0:
                    await asyncio.sleep(0.05)
            await asyncio.to_thread(lambda: [reporter.progress(100_000) for _ in range(5000)])
            return BackupOutcome("v", "v", "fr-par-1", "s", 100_000, 20_000, 1.0, "x")

        started = asyncio.get_running_loop().time()
        job_id = app.jobs.runner.submit(JobSpec("backup", {}, "chatty"), chatty)
        await wait_for(pilot, lambda: app.jobs.view(job_id).state == DONE)

        def headline() -> str:
            rows = panel.query("JobRow")
            return str(rows.first().query_one(".line").render()) if rows else ""

        await wait_for(pilot, lambda: "✔ done" in headline(), what="the done headline")
        elapsed = asyncio.get_running_loop().time() - started
        assert refreshes, "the panel was never refreshed"
        assert len(refreshes) <= elapsed * REFRESH_HZ + 2
        assert "✔ done" in headline()


async def test_no_color_starts_on_the_ansi_theme_and_still_shows_status_words(
        monkeypatch) -> None:  # noqa: ANN001
    from tests.tui.helpers import screen_text

    monkeypatch.setenv("NO_COLOR", "1")
    app = StrongroomApp(FakeSession(), AppSettings(), theme_dirs=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert app.theme == ANSI_THEME and app.no_color
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: "fr-par-1" in screen_text(pilot))
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: "web-data" in screen_text(pilot))
        await pilot.press("down", "down")
        # a glyph and a word, no colour needed
        await wait_for(pilot, lambda: "● in use" in screen_text(pilot), what="the status word")


async def test_settings_offer_a_store_on_object_storage_and_refuse_a_bad_url() -> None:
    app = StrongroomApp(FakeSession(), AppSettings(theme="strongroom-dark"), theme_dirs=[])
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("colon", "s", "e", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
        screen = app.screen
        store = screen.query_one("#store", Input)
        screen.query_one("#store-kind", Select).value = "s3"
        await wait_for(pilot, lambda: store.value == "s3://", what="the S3 URL started")
        assert "s3://bucket/prefix" in store.placeholder
        store.value = "s3://Bad_Bucket/strongroom"
        await pilot.press("ctrl+s")
        problem = str(screen.query_one("#store-problem").render())
        assert "not a bucket name" in problem
        assert not settings_mod.config_path().exists()  # nothing saved
        store.value = "s3://team-backups/strongroom"
        await pilot.pause(0.1)
        assert str(screen.query_one("#store-problem").render()) == ""
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: settings_mod.config_path().exists(), what="saved")
    assert settings_mod.load().store == "s3://team-backups/strongroom"
