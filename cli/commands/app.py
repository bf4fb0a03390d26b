"""`strongroom` / `strongroom tui` / `strongroom demo`: the terminal app."""
from __future__ import annotations

import argparse
import importlib
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from cli.commands.sandbox import add_timing_options, delays_from, need_sandbox
from cli.context import Context
from engine.errors import OperationError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tui", help="the terminal app (the default)")
    p.set_defaults(func=run_tui)
    p = sub.add_parser("demo", help="the sandbox and the app together, on a throwaway store")
    p.add_argument("--seed", type=int, default=0, help="seed of the sandbox's made-up inventory")
    add_timing_options(p)
    p.set_defaults(func=run_demo)


def _app_module() -> ModuleType:
    # The TUI (and Textual) is loaded only when asked for: other commands never pay for it.
    try:
        return importlib.import_module("tui.app")
    except ImportError as exc:
        raise OperationError(f"the terminal app is not available: {exc}") from None


def run_tui(args: argparse.Namespace, ctx: Context) -> int:
    return int(_app_module().run(ctx) or 0)


DEMO_PREFIX = "strongroom-demo-"
OWNER = "owner.pid"


def sweep_dead_demos(tmp_root: Path | None = None) -> list[Path]:
    """Remove the folders of demos whose process is gone (killed, or the machine lost power
    mid-demo: its throwaway store and sandbox would otherwise stay in the temp folder)."""
    removed = []
    for folder in Path(tmp_root or tempfile.gettempdir()).glob(DEMO_PREFIX + "*"):
        try:
            pid = int((folder / OWNER).read_text())
        except (OSError, ValueError):
            continue  # not one of ours, or still being set up: leave it
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def run_demo(args: argparse.Namespace, ctx: Context) -> int:
    """A local Scaleway and a store that live only as long as the app: nothing is kept.

    The store's passphrase is generated here and only ever held in memory.
    """
    need_sandbox()
    from engine.sandbox import Sandbox
    from engine.session import Session

    delays = delays_from(args)
    app = _app_module()
    sweep_dead_demos()
    with tempfile.TemporaryDirectory(prefix=DEMO_PREFIX) as tmp:
        (Path(tmp) / OWNER).write_text(f"{os.getpid()}\n")
        print("strongroom demo: starting the local Scaleway…", file=sys.stderr, flush=True)
        with Sandbox(Path(tmp) / "sandbox", profile="demo", seed=args.seed,
                     delays=delays) as sandbox:
            saved = {k: os.environ.get(k) for k in sandbox.env}
            os.environ.update(sandbox.env)
            try:
                passphrase = secrets.token_urlsafe(32)
                url = str(Path(tmp) / "store")
                with Session(store_url=url) as session:
                    session.init_store(passphrase)
                return int(app.run_demo(store_url=url, passphrase=passphrase) or 0)
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
