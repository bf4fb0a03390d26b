"""Small helpers for the TUI's Pilot tests."""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Input, Tree


async def wait_for(pilot: Pilot, predicate: Callable[[], object], timeout: float = 30.0,
                   what: str = "condition") -> None:
    """Wait until ``predicate()`` holds. The deadline is generous because the suite shares a
    loaded machine; a condition that holds returns at once, so only a failure waits it out."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        if predicate():
            if os.environ.get("TUI_TIMING"):
                print(f"{what}: {time.monotonic() - start:.1f}s")
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def screen_text(pilot: Pilot) -> str:
    """What the screen shows, as plain text (markup never interpreted)."""
    import io

    from rich.console import Console

    app = pilot.app

    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(),
                      record=True, legacy_windows=False, color_system=None)
    screen_render = app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens, simplify=True)
    console.print(screen_render)
    return console.export_text(styles=False)


def tree_labels(tree: Tree) -> list[str]:
    out: list[str] = []

    def walk(node) -> None:  # noqa: ANN001
        out.append(str(node.label))
        for child in node.children:
            walk(child)

    walk(tree.root)
    return out


def steady(app) -> None:  # noqa: ANN001
    """No blinking cursors: screenshots must not depend on the moment."""
    for inp in app.screen.query(Input):
        inp.cursor_blink = False


async def pause_until_idle(pilot: Pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.15)
    await asyncio.sleep(0)
