"""The command line: parses, calls the engine, prints. Nothing clever lives here.

Each area registers its own sub-commands from ``cli/commands/<area>.py`` (a ``register``
function that adds sub-parsers whose ``func`` takes ``(args, ctx)``), so the areas stay apart.
"""
from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from cli import context as ctxmod
from cli.commands import app, explore, jobs, sandbox, scaleway, store
from cli.output import one_line, print_error
from engine.errors import EXIT_INTERRUPTED, EXIT_OK, StrongroomError, UsageError

AREAS = (store, sandbox, scaleway, explore, jobs, app)  # the order of `strongroom --help`


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every other usage error
        raise UsageError(f"{message} (see 'strongroom --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="strongroom",
                     description="Back up Scaleway Block Storage volumes into an encrypted, "
                                 "deduplicated store, and restore them.")
    parser.add_argument("--store", help="store URL or directory (default: $STRONGROOM_STORE, "
                                        "else the local default store)")
    parser.add_argument("--profile", help="Scaleway config profile (default: $SCW_PROFILE)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for area in AREAS:
        area.register(sub)
    _json_anywhere(sub)
    return parser


def _json_anywhere(sub: argparse._SubParsersAction) -> None:
    """`strongroom jobs --json` as well as `strongroom --json jobs`: every command takes it."""
    for command in sub.choices.values():
        command.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                             help="print one JSON document on stdout")
        for action in command._subparsers._group_actions if command._subparsers else []:
            if isinstance(action, argparse._SubParsersAction):
                _json_anywhere(action)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            args.func = app.run_tui
        ctx = ctxmod.Context.from_args(args)
        result = args.func(args, ctx)
        return EXIT_OK if result is None else int(result)
    except KeyboardInterrupt as exc:  # Ctrl-C; SIGTERM and SIGHUP during a job (cli/jobrun.py)
        print(f"strongroom: {getattr(exc, 'message', 'interrupted')}", file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_INTERRUPTED))
    except StrongroomError as exc:
        if debug:
            sys.stderr.write(getattr(exc, "job_traceback", ""))  # a job's bug, from its thread
            raise
        print_error(str(exc))
        _quiet_if_stdout_is_gone()
        return exc.exit_code
    except BrokenPipeError:
        # A listing piped into `head`: what it wanted was printed.
        _quiet_if_stdout_is_gone()
        return EXIT_OK
    except Exception as exc:  # anything unexpected: still one line unless --debug
        if debug:
            raise
        print_error(f"{type(exc).__name__}: {one_line(str(exc))} (run with --debug for details)")
        return 1


def _quiet_if_stdout_is_gone() -> None:
    """When stdout's reader went away, point stdout at /dev/null so that Python's own flush at
    exit does not print a second, raw error."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())


def run() -> NoReturn:
    """The ``strongroom`` command: ``main()``, then a quick exit. Tearing the interpreter down
    (freeing every object of boto3, the Scaleway SDK, Textual…) took 0.3 s per command on an
    idle machine and over a second under load, after all the work was done; exit handlers
    still run and the output is flushed first. With threads still running (none should be),
    or under a profiler or tracer (``python -m cProfile``), the ordinary exit."""
    code = main()
    if threading.active_count() > 1 or sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # threads to wait for, or a profiler / tracer that reports at exit
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    atexit._run_exitfuncs()
    os._exit(code)
