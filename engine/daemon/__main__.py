"""`python -m engine.daemon`: how clients start the daemon (the engine never imports the CLI)."""
from __future__ import annotations

import argparse
import sys

from engine.daemon.server import run_daemon


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.daemon")
    parser.add_argument("--idle", type=float, default=None,
                        help="exit after this many seconds with no job and no client "
                             "(default $STRONGROOM_DAEMON_IDLE, else 600)")
    return run_daemon(idle=parser.parse_args().idle)


if __name__ == "__main__":
    sys.exit(main())
