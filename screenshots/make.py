"""Screenshots of the real app against the sandbox, headless, at fixed sizes.

    python screenshots/make.py [--out screenshots] [--theme strongroom-dark]

Starts the sandbox (profile "demo") and a throwaway store with some history (backups of several
volumes over the past days, made by the real CLI with `--time`; one of them of a volume deleted
since), drives the app with the keyboard as a person would, and saves one SVG per view: the main
screen, a running backup, the restore wizard, the store screen, the explorer with a text
preview and a job's log.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
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


async def open_tree(pilot, project: str = "web-production") -> InventoryTree:  # noqa: ANN001
    """The tree with ``project`` and its zones open, the cursor on its first volume."""
    tree = pilot.app.screen.query_one(InventoryTree)

    def projects():  # noqa: ANN202
        level = list(tree.root.children)
        nested = [c for n in level for c in n.children]
        return [n for n in level + nested if n.data is not None and n.data.kind == "project"]

    await until(pilot, lambda: any(project in str(n.label) for n in projects()))
    await pilot.app.workers.wait_for_complete()  # the organization's listing
    await pilot.pause(0.5)
    node = next(n for n in projects() if project in str(n.label))
    node.expand()
    await until(pilot, lambda: node.children and node.children[0].data.kind != "loading")
    for zone in list(node.children):
        zone.expand()
        await until(pilot, lambda: zone.children and zone.children[0].data.kind != "loading")
    tree.focus()
    tree.move_cursor(node.children[0].children[0])
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.3)
    return tree


def save(app: StrongroomApp, out: Path, name: str) -> None:
    app.save_screenshot(filename=f"{name}.svg", path=str(out))
    print(f"wrote {out / (name + '.svg')}")


async def shoot(out: Path, url: str, passphrase: str, theme: str, sandbox: Sandbox) -> None:
    def make() -> StrongroomApp:
        session = Session(SETTINGS, store_url=url, passphrase=lambda: passphrase, label="demo")
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
        await pilot.press("v")  # every volume of the organization, flat, with its state
        await pilot.pause(0.5)
        save(app, out, "volumes")
        await pilot.press("v")
        await pilot.pause(0.3)
        await pilot.press("colon", *"policies", "enter")  # compliance per policy
        await pilot.pause(0.8)
        save(app, out, "policies")
        await pilot.press("escape")
        await pilot.pause(0.3)
        sandbox.faults(s3_mib_per_s=3)  # a slow link, so the transfer is caught mid-way
        await pilot.press("b", "y")
        # the transfer is short on the sandbox: catch it, then let one 10 Hz tick draw it
        jobs = app.jobs.views
        await until(pilot, lambda: jobs() and (jobs()[0].phase == "transfer"
                                               and jobs()[0].bytes_done > 0
                                               or jobs()[0].finished))
        await until(pilot, lambda: jobs()[0].finished or jobs()[0].bytes_done > 12 << 20)
        await pilot.pause(0.12)
        save(app, out, "backup-running")
        sandbox.faults()
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
        await shoot_explorer(pilot, out)
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


# (volume, days ago) for each backup of the history; "dev-scratch" is deleted afterwards, so the
# inventory shows a volume only the store knows
HISTORY = (("web-01-data", 6), ("postgres-main", 6), ("web-01-data", 3), ("dev-scratch", 5),
           ("postgres-main", 2), ("web-01-data", 1), ("postgres-main", 0.3), ("web-01-data", 0.2))
GONE = "dev-scratch"
# policies, so that the tree shows each volume's state against its policy (docs/policies.md)
SETTINGS = Settings(policies={
    "prod-daily": {"match": {"environment": "production"}, "every": "24h",
                   "keep": {"last": 3, "daily": 7, "weekly": 4}, "verify": "7d"},
    "staging-weekly": {"match": {"environment": "staging"}, "every": "7d",
                       "keep": {"last": 4}}})


def seed_history(env: dict[str, str]) -> None:
    """Backups at past times through the real command line, then one volume deleted."""
    now = datetime.now(timezone.utc)
    by_time: dict[float, list[str]] = {}
    for volume, days in HISTORY:
        by_time.setdefault(days, []).append(volume)
    for days, volumes in sorted(by_time.items(), reverse=True):
        when = (now - timedelta(days=days)).isoformat(timespec="seconds")
        subprocess.run([sys.executable, "-m", "cli", "backup", *volumes, "--time", when,
                        "--no-daemon"], env=env, check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        print(f"history: backed up {', '.join(volumes)} as of {when}")
    from engine.scaleway.api import Apis
    from engine.scaleway.config import scw_client

    apis = Apis(scw_client())
    for zone in ("fr-par-1", "fr-par-2", "nl-ams-1"):
        for vol in apis.block.list_volumes_all(zone=zone, include_deleted=False):
            if vol.name == GONE:
                apis.block.delete_volume(volume_id=vol.id, zone=zone)
                print(f"history: deleted {GONE} ({vol.id})")


async def shoot_explorer(pilot, out: Path) -> None:  # noqa: ANN001
    """From the store screen: explore the newest backup and preview a text file."""
    from tui.screens.explore import ExploreScreen

    app = pilot.app
    await pilot.press("slash", *"web-01", "enter")  # the newest backup of web-01-data
    await pilot.pause(0.3)
    await pilot.press("e")
    await until(pilot, lambda: isinstance(app.screen, ExploreScreen) and app.screen.entries)
    screen = app.screen
    screen.open_dir("/home/ops")  # notes, and names that look like markup, shown as they are
    await until(pilot, lambda: screen.current_dir == "/home/ops" and screen.entries)
    table = screen.query_one("#file-list")
    names = [e.name for e in screen.entries]
    table.focus()
    table.move_cursor(row=names.index("notes.md") if "notes.md" in names else 0)
    await pilot.pause(1.0)
    await app.workers.wait_for_complete()
    await pilot.pause(0.3)
    save(app, out, "explorer")
    await pilot.press("escape")


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
            seed_history({**os.environ, "STRONGROOM_STORE": url,
                          "STRONGROOM_PASSPHRASE": passphrase})
            asyncio.run(shoot(args.out, url, passphrase, args.theme, sandbox))
    return 0


if __name__ == "__main__":
    sys.exit(main())
