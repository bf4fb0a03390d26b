"""What every command prints the same way: one JSON document on stdout, one-line messages on
stderr. The commands and the entry point (``cli.main``) both import this; it imports neither."""
from __future__ import annotations

import json
import sys
from typing import Any

from engine.terminal import show_hidden

PROG = "strongroom"


def print_json(doc: Any) -> None:
    """``--json``: one document on stdout (values JSON does not know are printed as ``str``)."""
    json.dump(doc, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def one_line(text: str) -> str:
    """Any message on one line, safe for a terminal: runs of whitespace (newlines too) become
    one space, other hidden characters (ESC, bidi overrides) show as ``\\xNN``."""
    return show_hidden(" ".join(text.split())) or "unknown error"


def safe(text: object) -> str:
    """Untrusted text (a name, a tag, a title) for one cell of a plain-text table."""
    return show_hidden(str(text))


def print_error(message: str) -> None:
    """``strongroom: error: <message on one line>`` on stderr."""
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)


def print_warning(message: str) -> None:
    """``strongroom: warning: <message on one line>`` on stderr."""
    print(f"{PROG}: warning: {one_line(message)}", file=sys.stderr)
