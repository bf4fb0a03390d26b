"""`strongroom` / `strongroom tui` / `strongroom demo`: the terminal app."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import platformdirs

from cli.commands.sandbox import add_timing_options, delays_from, need_sandbox
from cli.throwaway import DEMO_PREFIX, OWNER, sweep_dead_demos, throwaway_dir  # noqa: F401
from cli.context import Context
from engine.errors import OperationError
from engine.settings import APP_NAME


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


# Where platformdirs looks on Linux: pointed into the demo's folder for the demo's life, so
# that nothing it does (settings saved, the store's cache) lands in the user's own folders.
KDF_MEMORY = "STRONGROOM_KDF_MEMORY_KIB"
XDG = {"XDG_CONFIG_HOME": "config", "XDG_DATA_HOME": "data", "XDG_CACHE_HOME": "cache",
       "XDG_STATE_HOME": "state"}


@contextlib.contextmanager
def demo_home(folder: Path) -> Iterator[Path]:
    """XDG folders inside ``folder`` until the block ends. The user's own settings, app
    preferences and themes are copied in first (read, never written): the demo opens in the
    user's theme, and what it saves stays in the demo."""
    config = Path(platformdirs.user_config_dir(APP_NAME))
    homes = {var: folder / sub for var, sub in XDG.items()}
    mine = homes["XDG_CONFIG_HOME"] / APP_NAME
    mine.mkdir(parents=True)
    for name in ("settings.toml", "tui.toml"):
        with contextlib.suppress(OSError):
            shutil.copyfile(config / name, mine / name)
    with contextlib.suppress(OSError):
        shutil.copytree(config / "themes", mine / "themes")
    saved = {var: os.environ.get(var) for var in homes}
    os.environ.update({var: str(path) for var, path in homes.items()})
    try:
        yield mine
    finally:
        _restore_env(saved)


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def run_demo(args: argparse.Namespace, ctx: Context) -> int:
    """A local Scaleway and a store that live only as long as the app: nothing is kept.

    The app opens at once and says that the sandbox is starting (seconds: moto's S3 server
    imports Flask); the sandbox and the store are made meanwhile, in a thread. The store's
    passphrase is generated here and only ever held in memory.
    """
    need_sandbox()
    delays = delays_from(args)
    with throwaway_dir("app") as tmp, demo_home(Path(tmp) / "home"), \
            ThreadPoolExecutor(1, thread_name_prefix="demo-start") as pool:
        passphrase = secrets.token_urlsafe(32)
        url = str(Path(tmp) / "store")
        saved: dict[str, str | None] = {}
        # the app first: its first screen comes sooner when the sandbox's start-up (a thread
        # here, and moto's process) does not compete with its imports
        app = _app_module()
        ready = pool.submit(_start_sandbox, Path(tmp), args.seed, delays, url, passphrase, saved)
        try:
            return int(app.run_demo(store_url=url, passphrase=passphrase, ready=ready) or 0)
        finally:
            _stop_sandbox(ready)
            _restore_env(saved)


def _start_sandbox(folder: Path, seed: int, delays: Any, url: str, passphrase: str,
                   saved: dict[str, str | None]) -> Any:
    from engine.sandbox import Sandbox
    from engine.session import Session

    sandbox = Sandbox(folder / "sandbox", profile="demo", seed=seed, delays=delays).start()
    try:
        saved.update({k: os.environ.get(k) for k in [*sandbox.env, KDF_MEMORY]})
        os.environ.update(sandbox.env)
        # a throwaway store whose passphrase is 32 random bytes: the key derivation's memory
        # cost protects guessable passphrases, and would only delay the demo here
        os.environ[KDF_MEMORY] = "8192"
        with Session(store_url=url) as session:
            session.init_store(passphrase)
    except BaseException:
        sandbox.stop()
        raise
    return sandbox


def _stop_sandbox(ready: "Future[Any]") -> None:
    """Wait for a start still running (the app was quit meanwhile), then stop the sandbox
    without saving its objects (its folder goes next); said, as it takes a moment."""
    print("strongroom demo: stopping the sandbox…" if ready.done() else
          "strongroom demo: waiting for the sandbox to finish starting, to stop it…",
          file=sys.stderr, flush=True)
    try:
        sandbox = ready.result()
    except BaseException:  # the app said why
        return
    sandbox.stop(save=False)
