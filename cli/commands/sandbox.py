"""`strongroom sandbox`: a local Scaleway (Block, Account, Instance, IAM, S3) in the foreground."""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cli.context import Context
from cli.throwaway import throwaway_dir
from cli.output import print_json
from engine.errors import OperationError, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's sub-commands to the parser."""
    p = sub.add_parser("sandbox", help="run the local Scaleway + S3 in the foreground; prints "
                                       "`export VAR=value` lines to use it")
    p.add_argument("--port", type=int, default=0,
                   help="API port on 127.0.0.1 (default: any free port)")
    p.add_argument("--s3-port", type=int, default=0,
                   help="S3 port on 127.0.0.1 (default: any free port)")
    p.add_argument("--state", metavar="DIR",
                   help="folder holding the sandbox's volumes and snapshots, kept when it stops "
                        "so that a restarted sandbox finds them again (default: a temporary "
                        "folder, removed when it stops)")
    p.add_argument("--seed", type=int, default=0, help="inventory seed for a new state folder")
    p.add_argument("--profile", choices=("small", "demo"), default="demo",
                   help="how much data a new state folder gets (default: demo)")
    p.add_argument("--delay", type=float, default=None, metavar="SECONDS",
                   help="how long each status transition takes (creating, updating, "
                        "exporting...; default: 0.3)")
    add_timing_options(p)
    p.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE",
                   help="inject a fault from the start: latency_ms=200, rate_429=0.1, "
                        "rate_503=0.05, fail_export=true, drop_s3=3, fail_after_create=1, "
                        "streak_429=3 (429s in a row; the real-429 mode is rate_429=0.3 "
                        "with streak_429=3), rate_limit=1000 with rate_window=10 (calls per "
                        "window per key); on every S3 request: s3_rate_429=0.1, "
                        "s3_rate_503=0.1, s3_rate_drop=0.05 (reset after the work), "
                        "s3_fail_writes_after=N, s3_ignore_conditional=true, s3_mib_per_s=2 (repeatable)")
    p.set_defaults(func=run_sandbox)


SANDBOX_NEEDS = ("aiohttp", "moto", "flask")  # the API server, the S3 server and what it runs on


def need_sandbox() -> None:
    """The sandbox is an extra (moto and its server weigh more than the rest of strongroom):
    say how to install it, in one line, rather than fail in a child process."""
    for name in SANDBOX_NEEDS:
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None:
            raise UsageError(f"the sandbox is not installed ({name} is missing): "
                             "pip install 'strongroom[sandbox]'")


def add_timing_options(p: argparse.ArgumentParser) -> None:
    """--timing and --time-scale, for `strongroom sandbox` and `strongroom demo`."""
    p.add_argument("--timing", choices=("fast", "realistic"), default="fast",
                   help="fast: every status transition takes a moment; realistic: as long as "
                        "the real API was recorded taking, by size (a snapshot up to 87 s, an "
                        "import about 2 to 4 minutes)")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="FACTOR",
                   help="with --timing realistic: multiply those durations (0.1: ten times "
                        "faster; default 1)")


def delays_from(args: argparse.Namespace) -> Any:
    """The sandbox's Delays for --timing/--time-scale (and `strongroom sandbox`'s --delay);
    None for the default."""
    need_sandbox()
    from engine.sandbox import Delays

    delay = getattr(args, "delay", None)
    if args.timing == "realistic":
        if delay is not None:
            raise UsageError("--delay and --timing realistic do not go together: choose one")
        try:
            return Delays.realistic_timing(args.time_scale)
        except ValueError as exc:
            raise UsageError(f"--time-scale: {exc}") from None
    if args.time_scale != 1.0:
        raise UsageError("--time-scale goes with --timing realistic")
    if delay is not None:
        if not 0 <= delay <= 3600:
            raise UsageError("--delay must be between 0 and 3600 seconds")
        return Delays(*(delay,) * 5)
    return None


def parse_faults(items: list[str]) -> dict[str, Any]:
    faults: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--fault {item!r}: write NAME=VALUE, e.g. --fault latency_ms=200")
        try:
            faults[name.strip()] = json.loads(value)
        except ValueError:
            raise UsageError(f"--fault {item!r}: the value must be a number, true or false"
                             ) from None
    return faults


def run_sandbox(args: argparse.Namespace, ctx: Context) -> int:
    need_sandbox()
    for name, port in (("--port", args.port), ("--s3-port", args.s3_port)):
        if not 0 <= port <= 65535:
            raise UsageError(f"{name} must be between 0 and 65535")
    delays = delays_from(args)
    with contextlib.ExitStack() as stack:
        state = Path(args.state) if args.state else \
            Path(stack.enter_context(throwaway_dir("sandbox"))) / "state"
        return _serve(args, ctx, state, delays, kept=bool(args.state))


def _serve(args: argparse.Namespace, ctx: Context, state: Path, delays: Any,
           kept: bool) -> int:
    from engine.sandbox import Sandbox

    try:
        sandbox = Sandbox(state, port=args.port, seed=args.seed, profile=args.profile,
                          faults=parse_faults(args.fault), delays=delays, s3_port=args.s3_port)
    except ValueError as exc:
        raise UsageError(f"{exc} (see 'strongroom sandbox --help')") from None
    stop = threading.Event()
    # Both signals just ask the main loop to stop, so the stop is always the clean one.
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sandbox.start()
        except OSError as exc:
            raise OperationError(f"cannot start the sandbox: {exc.strerror or exc}; "
                                 f"try another --port") from None
        try:
            _announce(sandbox, state, ctx.json, kept)
            while not stop.wait(0.5):
                pass
        finally:
            sandbox.stop()
            print("# sandbox stopped", file=sys.stderr, flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _announce(sandbox: Any, state: Path, as_json: bool, kept: bool) -> None:
    if as_json:
        print_json({"env": sandbox.env, "buckets": sandbox.buckets, "state": str(state),
                    "admin": f"{sandbox.api_url}/_sandbox/faults"})
    else:
        for name, value in sandbox.env.items():
            print(f"export {name}={shlex.quote(value)}")
    sys.stdout.flush()
    fate = "kept when it stops" if kept else "removed when it stops; --state DIR keeps it"
    print(f"# sandbox state: {state} ({fate})\n"
          f"# staging buckets: {', '.join(sandbox.buckets.values())}\n"
          f"# other API keys (readonly, nobucket, noblock) and faults: "
          f"{sandbox.api_url}/_sandbox/faults (POST a JSON object to change them)\n"
          f"# stop with Ctrl-C", file=sys.stderr, flush=True)
