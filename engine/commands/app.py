"""`strongroom` / `strongroom tui` / `strongroom demo`: the terminal app."""
from __future__ import annotations

import argparse

from engine.commands.context import Context
from engine.errors import OperationError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tui", help="the terminal app (the default)")
    p.set_defaults(func=run_tui)
    p = sub.add_parser("demo", help="the sandbox and the app together, on a throwaway store")
    p.set_defaults(func=run_demo)


def run_tui(args: argparse.Namespace, ctx: Context) -> int:
    # The engine never imports the UI at module level: the TUI is loaded only when asked for.
    import importlib

    try:
        app_module = importlib.import_module("tui.app")
    except ImportError as exc:
        raise OperationError(f"the terminal app is not available: {exc}") from None
    return int(app_module.run(ctx) or 0)


def run_demo(args: argparse.Namespace, ctx: Context) -> int:
    raise OperationError("`strongroom demo` is not built yet")
