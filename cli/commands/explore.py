"""CLI commands of the explore area: ls, cat, restore-files, diff — files inside a backup."""
from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from cli.context import Context
from cli.jobrun import Launcher, add_job_options
from cli.output import print_error, print_json
from cli.snapref import add_snapshot_argument, fields, resolve
from engine import jobkinds
from engine.errors import EXIT_PROBLEM
from engine.jobkinds import RestoreFilesParams
from engine.units import human_bytes, plural

if TYPE_CHECKING:  # dissect takes most of a second to import: only commands that read pay it
    from engine.explore import Entry, Explorer

COPY_BLOCK = 1 << 20
PATH_HELP = (
    "PATH inside the image is written as ls prints names: \\\\ is a backslash and \\xNN the "
    "byte NN, so a name holding a '/' (only a damaged or crafted filesystem has one) is written "
    "with \\x2f, e.g. /tmp/a\\x2fb. A component <N> is the entry of that directory whose inode "
    "number is N (ls -i shows them): it names one of two entries that share a name, which a "
    "plain name refuses to guess. Paths in --json output are in this form too.")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's sub-commands to the parser."""
    p = sub.add_parser("ls", help="list files inside a backed-up volume", epilog=PATH_HELP)
    add_snapshot_argument(p)
    p.add_argument("path", nargs="?", default="/", help="directory or file inside the image")
    p.add_argument("-l", "--long", action="store_true",
                   help="type, mode, size and modification time too")
    p.add_argument("-i", "--inode", action="store_true",
                   help="inode number first (name an entry as <N> in a PATH)")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("cat", help="write a file from inside a backed-up volume to stdout",
                       epilog=PATH_HELP)
    add_snapshot_argument(p)
    p.add_argument("path", help="file inside the image")
    p.set_defaults(func=cmd_cat)

    p = sub.add_parser("restore-files",
                       help="copy a file or a tree out of a backup into a local folder",
                       epilog=PATH_HELP)
    add_snapshot_argument(p)
    p.add_argument("path", help="file or directory inside the image")
    p.add_argument("--to", required=True, metavar="DIR",
                   help="local folder; the result lands at DIR/<basename of PATH> ('/' at DIR/root); "
                        "nothing is written outside it")
    add_job_options(p)
    p.set_defaults(func=cmd_restore_files)

    p = sub.add_parser("diff", help="files added, removed and changed between two backups",
                       epilog=PATH_HELP)
    p.add_argument("snapshot_a", metavar="SNAPSHOT_A", help="the older snapshot")
    p.add_argument("snapshot_b", metavar="SNAPSHOT_B", help="the newer snapshot")
    p.add_argument("path", nargs="?", default="/")
    p.set_defaults(func=cmd_diff)


# -- opening ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _explorer(ctx: Context, *refs: str, volume: str | None = None
              ) -> Iterator[list["Explorer"]]:
    """One explorer per snapshot named, all open together; which snapshots the names
    resolved to is said first."""
    with ctx.session() as session, contextlib.ExitStack() as stack:
        ids = [resolve(session, ref, volume).id for ref in refs]
        yield [stack.enter_context(session.explorer(snap_id)) for snap_id in ids]


# -- printing untrusted names ----------------------------------------------------------------
# Names go through engine.explore.names: escaped so that they can neither move the cursor,
# change colours nor break a line, and so that what ls prints can be typed back as a PATH.
# Entry.path is already in that form; messages that quote paths only need hidden characters
# shown (their backslashes are escapes already).


def _json_entry(entry: "Entry") -> dict:
    doc = entry.to_json()
    # JSON cannot carry lone surrogates portably: give undecodable bytes as \x escapes.
    for key in ("name", "path", "link_target"):
        if isinstance(doc.get(key), str):
            doc[key] = doc[key].encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return doc


def short_line(entry: "Entry", inode: bool = False) -> str:
    line = _shown_name(entry) + ("/" if entry.is_dir else "")
    return f"{entry.inode:>10} {line}" if inode else line


def _shown_name(entry: "Entry") -> str:
    from engine.explore.names import escape_name

    # an empty name (a damaged directory) shows as the <inode> form its path uses
    return escape_name(entry.name) or entry.path.rsplit("/", 1)[-1]


def long_line(entry: "Entry", inode: bool = False) -> str:
    from engine.explore.names import escape_text

    name = _shown_name(entry) + ("/" if entry.is_dir else "")
    if entry.link_target is not None:
        name += " -> " + escape_text(entry.link_target)
    when = entry.mtime.replace("T", " ").rstrip("Z")
    line = f"{entry.permissions} {entry.type:<7} {entry.size:>12} {when}  {name}"
    return f"{entry.inode:>10} {line}" if inode else line


# -- commands --------------------------------------------------------------------------------
def cmd_ls(args: argparse.Namespace, ctx: Context) -> int | None:
    with _explorer(ctx, args.snapshot, volume=args.volume) as (explorer,):
        entries = explorer.listdir(args.path)
    if ctx.json:
        print_json([_json_entry(e) for e in entries])
        return None
    for entry in entries:
        print(long_line(entry, args.inode) if args.long else short_line(entry, args.inode))
    return None


def cmd_cat(args: argparse.Namespace, ctx: Context) -> int | None:
    out = sys.stdout.buffer
    with _explorer(ctx, args.snapshot, volume=args.volume) as (explorer,):
        with explorer.open(args.path) as src:
            while block := src.read(COPY_BLOCK):
                out.write(block)
    out.flush()
    return None


def cmd_restore_files(args: argparse.Namespace, ctx: Context) -> int | None:
    from engine.explore import RestoreReport
    from engine.explore.names import show_hidden

    with ctx.session() as session:
        info = resolve(session, args.snapshot, args.volume)
        params = RestoreFilesParams(info.id, args.path, str(Path(args.to).resolve()))
        result = Launcher(ctx, args).run_one(session, jobkinds.spec(params))
    if result is None:
        return 0
    report = RestoreReport(**result)
    if ctx.json:
        doc = asdict(report) | {"resolved": fields(info)}
        doc["skipped"] = [show_hidden(s) for s in report.skipped]
        print_json(doc)
    else:
        for line in report.skipped:
            print(f"strongroom: skipped {show_hidden(line)}", file=sys.stderr)
        print(f"restored {plural(report.files, 'file')}, {plural(report.dirs, 'directory')}, "
              f"{plural(report.symlinks, 'symlink')} ({human_bytes(report.bytes)}) to "
              f"{show_hidden(report.target)}")
    if report.skipped:
        were = "was" if len(report.skipped) == 1 else "were"
        print_error(f"{plural(len(report.skipped), 'entry')} {were} not restored (listed above); "
                    "everything else was")
        return EXIT_PROBLEM
    return None


def cmd_diff(args: argparse.Namespace, ctx: Context) -> int | None:
    from engine.explore import diff
    from engine.explore.names import show_hidden

    with _explorer(ctx, args.snapshot_a, args.snapshot_b) as (a, b):
        result = diff(a, b, args.path)
    if ctx.json:
        doc = result.to_json()
        for key in ("added", "removed"):
            doc[key] = [_json_entry(e) for e in (result.added if key == "added" else result.removed)]
        print_json(doc)
        return None
    # paths are escaped by the explorer; show_hidden is a second guard, never a re-escape
    lines = [(e.path, f"+ {show_hidden(e.path)}") for e in result.added]
    lines += [(e.path, f"- {show_hidden(e.path)}") for e in result.removed]
    lines += [(c.path, f"M {show_hidden(c.path)} ({', '.join(c.reasons)})")
              for c in result.changed]
    for _, line in sorted(lines):
        print(line)
    if not lines:
        print("no differences", file=sys.stderr)
    return None
