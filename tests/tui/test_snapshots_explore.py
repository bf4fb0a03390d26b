"""Snapshot tests of the explorer's new views at 80x24 and 120x40: the file list narrowed by a
filter, and the full-height preview searching. A real ext4 image made with a fixed clock
(tests/fixtures/explore.py ``browse_image``), the app of tests/tui/test_snapshots.py (fixed
clock, fixed theme). Update with `pytest --snapshot-update` after looking at the SVGs."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.explore import open_volume
from tests.tui.helpers import steady, wait_for
from tests.tui.test_snapshots import SIZES, app_with_jobs
from tui.screens.explore import ExploreScreen


async def explore(pilot, fh) -> ExploreScreen:  # noqa: ANN001
    screen = ExploreScreen(open_volume(fh), title="web-data b2c3d4e5f607")
    await pilot.app.push_screen(screen)
    await pilot.app.workers.wait_for_complete()
    await wait_for(pilot, lambda: screen.query_one("#file-list").row_count == 4, what="root")
    return screen


async def into(pilot, screen: ExploreScreen, name: str, rows: int) -> None:  # noqa: ANN001
    table = screen.query_one("#file-list")
    row = next(i for i, e in enumerate(screen.entries) if e.name == name)
    table.move_cursor(row=row)
    await pilot.press("enter")
    await wait_for(pilot, lambda: table.row_count == rows and screen.current_dir == f"/{name}",
                   what=name)


async def quiet(pilot) -> None:  # noqa: ANN001
    await pilot.app.workers.wait_for_complete()
    steady(pilot.app)
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_explore_filtered(snap_compare, size, browse_image: Path) -> None:  # noqa: ANN001
    with open(browse_image, "rb") as fh:
        async def before(pilot) -> None:  # noqa: ANN001
            screen = await explore(pilot, fh)
            await into(pilot, screen, "data", 12)
            await pilot.press("slash", *"file")
            await wait_for(pilot, lambda: len(screen.entries) == 6, what="the filter")
            await pilot.press("down")
            await quiet(pilot)

        assert snap_compare(app_with_jobs(), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_explore_preview_search(snap_compare, size, browse_image: Path) -> None:  # noqa: ANN001
    from tui.screens.preview import PreviewScreen, TextView

    with open(browse_image, "rb") as fh:
        async def before(pilot) -> None:  # noqa: ANN001
            screen = await explore(pilot, fh)
            await into(pilot, screen, "docs", 1)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, PreviewScreen),
                           what="preview")
            view = pilot.app.screen.query_one(TextView)
            await wait_for(pilot, lambda: len(view.lines) == 300, what="the text")
            await pilot.press("slash", *"needle", "enter", "n")
            await quiet(pilot)

        assert snap_compare(app_with_jobs(), terminal_size=size, run_before=before)
