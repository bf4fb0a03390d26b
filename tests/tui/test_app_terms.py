"""The app speaks in fields, steps and its settings screen, not in the command line's flags:
the engine's messages (whose fix names a flag for the CLI) are said in the app's terms."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.errors import UsageError
from engine.scaleway.config import HOW_TO_SET
from engine.session import StoreStatus
from tests.fixtures.tui import FakeSession
from tests.tui.helpers import screen_text, wait_for
from tui.app import StrongroomApp
from tui.format import in_app_terms
from tui.screens.main import MainScreen
from tui.screens.store import StoreScreen
from tui.settings import AppSettings

FLAG = re.compile(r"(?<![\w`'-])--[a-z][a-z-]+")


def _missing_store_message(tmp_path: Path) -> str:
    from engine.store import Store

    with pytest.raises(UsageError) as caught:
        Store.open(str(tmp_path / "nowhere"), "pass")
    return str(caught.value)


def test_engine_messages_in_the_apps_terms(tmp_path: Path) -> None:
    messages = [
        _missing_store_message(tmp_path), HOW_TO_SET,
        # as engine/scaleway/flows.py and preflight.py word them
        "a volume named web already exists in fr-par-1 (vol-1): choose another name with "
        "--name, or pass --rename-on-clash to restore as web-restored-20261202",
        "is what an interrupted restore left: delete it, or choose another name with --name",
        "no project to restore into: pass --project",
        "the bucket b is in nl-ams: use a bucket in fr-par (--bucket, or the settings)",
        "remove its default encryption (`aws s3api delete-bucket-encryption --bucket b`) or "
        "choose another bucket with --bucket",
        "no Scaleway profile 'x' in /c: add it with `scw init -p x` or choose another with "
        "--profile",
    ]
    def flags(text: str) -> list[str]:
        return FLAG.findall(re.sub(r"`[^`]*`", "", text))  # a command to type is no flag

    assert all(flags(m) for m in messages)  # each names a flag for the CLI
    for message in messages:
        said = in_app_terms(message)
        assert not flags(said), said
    assert "in the Name step, such as web-restored-20261202" in in_app_terms(messages[2])
    # a command to type stays as it is
    assert "`aws s3api delete-bucket-encryption --bucket b`" in in_app_terms(messages[6])


class NoStore(FakeSession):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def store_status(self) -> StoreStatus:
        return StoreStatus(self.store_url, False, self.message)


async def test_the_store_screen_says_where_to_set_the_store(tmp_path: Path) -> None:
    app = StrongroomApp(NoStore(_missing_store_message(tmp_path)),
                        AppSettings(theme="strongroom-dark"), theme_dirs=[])
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="main screen")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, StoreScreen), what="store")
        await wait_for(pilot, lambda: "no store at" in screen_text(pilot), what="the problem")
        text = screen_text(pilot)
        assert "--store" not in text and "settings" in text
