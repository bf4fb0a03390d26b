"""The restore wizard says that the new volume keeps the original's KMS key (issue 13, 12)."""
from __future__ import annotations

from tests.fixtures.tui import FakeSession
from tests.tui.helpers import screen_text
from tests.tui.test_restore_preflight import review_page
from tui.app import StrongroomApp
from tui.settings import AppSettings

KEY = "6f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"


async def test_the_review_says_the_kms_key_is_kept() -> None:
    session = FakeSession()
    for snap in session.snapshots:
        snap.source["kms_key_id"] = KEY
    app = StrongroomApp(session, AppSettings(theme="strongroom-dark"), theme_dirs=[])
    async with app.run_test(size=(100, 40)) as pilot:
        await review_page(pilot)
        text = screen_text(pilot)
        assert f"KMS key    {KEY} (kept: the original's)" in text, text


async def test_no_kms_line_without_a_key() -> None:
    app = StrongroomApp(FakeSession(), AppSettings(theme="strongroom-dark"), theme_dirs=[])
    async with app.run_test(size=(100, 40)) as pilot:
        await review_page(pilot)
        assert "KMS key" not in screen_text(pilot)
