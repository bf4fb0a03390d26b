"""Screenshots of the real app against the sandbox, headless, at fixed sizes.

    python screenshots/make.py [--out screenshots] [--theme strongroom-dark]

Starts the sandbox (profile "demo") and a throwaway store, drives the app with the keyboard as a
person would, and saves one SVG per view: the main screen, a running backup, the restore wizard,
the store screen and a job's log.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.sandbox import Sandbox  # noqa: E402
from engine.session import Session  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.store import Store  # noqa: E402
from tui.app import StrongroomApp  # noqa: E402
from tui.settings import AppSettings  # noqa: E402
from tui.widgets.inventory import InventoryTree  # noqa: E402


async def until(pilot, predicate, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("screenshots: the app never reached the expected state")
        await pilot.pause(0.05)


async def open_tree(pilot) -> InventoryTree:  # noqa: ANN001
    tree = pilot.app.screen.query_one(InventoryTree)
    await until(pilot, lambda: tree.root.children and tree.root.children[0].data.kind == "project")
    for _ in range(2):
        await pilot.press("down", "enter")
        node = tree.cursor_node
        await until(pilot, lambda: node.children and node.children[0].data.kind != "loading")
    await pilot.press("down")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.3)
    return tree


def save(app: StrongroomApp, out: Path, name: str) -> None:
    app.save_screenshot(filename=f"{name}.svg", path=str(out))
    print(f"wrote {out / (name + '.svg')}")


async def shoot(out: Path, url: str, passphrase: str, theme: str) -> None:
    def make() -> StrongroomApp:
        session = Session(Settings(), store_url=url, passphrase=lambda: passphrase, label="demo")
        return StrongroomApp(session, AppSettings(theme=theme),
                             where="demo: local sandbox · throwaway store")

    app = make()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_tree(pilot)
        save(app, out, "main-80x24")

    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_tree(pilot)
        save(app, out, "main")
        await pilot.press("b", "y")
        # the transfer is short on the sandbox: catch it, then let one 10 Hz tick draw it
        jobs = app.jobs.views
        await until(pilot, lambda: jobs() and (jobs()[0].phase == "transfer"
                                               and jobs()[0].bytes_done > 0
                                               or jobs()[0].finished))
        await pilot.pause(0.12)
        save(app, out, "backup-running")
        await until(pilot, lambda: jobs()[0].finished, timeout=120)
        await pilot.pause(0.3)
        await pilot.press("j", "enter")  # the jobs screen, then the job's detail
        await pilot.pause(0.5)
        save(app, out, "job-log")
        await pilot.press("escape", "escape")
        await pilot.press("s")
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        save(app, out, "store")
        await pilot.press("r")
        wizard = app.screen
        await until(pilot, lambda: wizard.query_one("#project").value is not None
                    and wizard.query_one("#name-input").value)
        await pilot.press("ctrl+n", "enter")
        await until(pilot, lambda: wizard.query_one("#size-input").has_focus)
        await pilot.press("enter")
        await until(pilot, lambda: wizard.query_one("#iops-set").has_focus)
        await pilot.press("ctrl+n")
        await until(pilot, lambda: wizard.checks_ok or "fix the failures" in str(
            wizard.query_one("#preflight").render()))
        for field in wizard.query("Input"):
            field.cursor_blink = False
        await pilot.pause(0.3)
        save(app, out, "restore-wizard")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--theme", default="strongroom-dark")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="strongroom-shots-") as tmp:
        with Sandbox(Path(tmp) / "sandbox", profile="demo") as sandbox:
            os.environ.update(sandbox.env)
            passphrase = secrets.token_urlsafe(24)
            url = str(Path(tmp) / "store")
            Store.init(url, passphrase).close()
            asyncio.run(shoot(args.out, url, passphrase, args.theme))
    return 0


if __name__ == "__main__":
    sys.exit(main())
