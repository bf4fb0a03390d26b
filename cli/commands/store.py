"""CLI commands of the store: init, key passwd, backup-image, restore-image, snapshots, check."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from cli.context import Context, read_passphrase
from cli.jobrun import Launcher, add_job_options
from cli.output import print_error, print_json, safe
from engine import jobkinds
from engine.errors import EXIT_PROBLEM, UsageError
from engine.jobkinds import BackupImageParams, CheckParams, RestoreImageParams
from engine.units import human_bytes


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's sub-commands to the parser."""
    p = sub.add_parser("init", help="create the store")
    p.add_argument("--chunk-size", type=int, default=None, metavar="BYTES",
                   help="average chunk size of the new store (default 65536)")
    p.set_defaults(func=cmd_init)

    key = sub.add_parser("key", help="manage the store key")
    key_sub = key.add_subparsers(dest="key_command", metavar="ACTION", required=True,
                                 parser_class=sub._parser_class)
    p = key_sub.add_parser("passwd", help="change the passphrase (data is not rewritten)")
    p.set_defaults(func=cmd_passwd)

    p = sub.add_parser("backup-image", help="back up a local image file (or - for stdin)")
    p.add_argument("file", metavar="FILE|-")
    p.add_argument("--name", default="", help="a name for the snapshot")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                   help="a tag (repeatable)")
    add_job_options(p)
    p.set_defaults(func=cmd_backup_image)

    p = sub.add_parser("restore-image", help="write a snapshot's image back, byte for byte")
    p.add_argument("snapshot", metavar="SNAPSHOT")
    p.add_argument("out", metavar="OUT|-")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    add_job_options(p)
    p.set_defaults(func=cmd_restore_image)

    p = sub.add_parser("snapshots", help="list store snapshots")
    p.set_defaults(func=cmd_snapshots)

    p = sub.add_parser("check", help="verify the store")
    p.add_argument("--read-data", action="store_true",
                   help="also re-read and verify every blob")
    add_job_options(p)
    p.set_defaults(func=cmd_check)


def cmd_init(args: argparse.Namespace, ctx: Context) -> int:
    passphrase = ctx.passphrase("New passphrase: ", confirm=True)
    with ctx.session(ask=False) as session:
        store = session.init_store(passphrase, chunk_avg=args.chunk_size)
        if ctx.json:
            print_json({"store": store.url, "id": store.id})
        else:
            print(f"created store {store.id} at {store.url}")
            print("keep the passphrase safe: without it the data cannot be read")
    return 0


def _new_passphrase() -> str:
    return read_passphrase("STRONGROOM_NEW_PASSPHRASE", "New passphrase: ", confirm=True)


def cmd_passwd(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.session() as session:
        store = session.store()
        store.change_passphrase(_new_passphrase())
        if ctx.json:
            print_json({"store": store.url, "changed": True})
        else:
            print("passphrase changed")
    return 0


def _tags(values: list[str]) -> dict[str, str]:
    tags = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"bad tag {value!r}: use --tag KEY=VALUE")
        tags[key.strip()] = val
    return tags


def cmd_backup_image(args: argparse.Namespace, ctx: Context) -> int:
    tags = _tags(args.tag)
    stdin = args.file == "-"
    path = "-" if stdin else str(Path(args.file).resolve())
    params = BackupImageParams(path, args.name, tags)
    with ctx.session() as session:
        work = ((lambda reporter: session.backup_image(reporter, params, sys.stdin.buffer))
                if stdin else None)
        result = Launcher(ctx, args).run_one(session, jobkinds.spec(params), work)
    if result is None:
        return 0
    snapshot = result["snapshot"]["id"]
    if ctx.json:
        print_json({"snapshot": snapshot, "bytes": result["bytes"],
                    "stored_bytes": result["stored_bytes"], "seconds": result["seconds"]})
    else:
        print(snapshot)
        rate = result["bytes"] / result["seconds"] if result["seconds"] else 0
        print(f"backed up {human_bytes(result['bytes'])} in {result['seconds']:.1f} s "
              f"({human_bytes(rate)}/s), stored {human_bytes(result['stored_bytes'])} new",
              file=sys.stderr)
    return 0


def cmd_restore_image(args: argparse.Namespace, ctx: Context) -> int:
    to_stdout = args.out == "-"
    if to_stdout and sys.stdout.isatty():
        raise UsageError("refusing to write an image to a terminal: redirect stdout or "
                         "give a file name")
    params = RestoreImageParams(args.snapshot,
                                "-" if to_stdout else str(Path(args.out).resolve()), args.force)
    with ctx.session() as session:
        work = ((lambda reporter: session.restore_image(reporter, params, sys.stdout.buffer))
                if to_stdout else None)
        result = Launcher(ctx, args).run_one(session, jobkinds.spec(params), work)
    if result is None:
        return 0
    snapshot, seconds = result["snapshot"]["id"], result["seconds"]
    doc = {"snapshot": snapshot, "bytes": result["bytes"], "seconds": seconds,
           "target": "-" if to_stdout else str(Path(args.out))}
    if ctx.json and not to_stdout:
        print_json(doc)
    else:
        rate = result["bytes"] / seconds if seconds else 0
        print(f"restored snapshot {snapshot[:12]} ({human_bytes(result['bytes'])}) to "
              f"{doc['target']} in {seconds:.1f} s ({human_bytes(rate)}/s), verified",
              file=sys.stderr)
    return 0


def cmd_snapshots(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.session() as session:
        infos = session.snapshots()
    if ctx.json:
        print_json([i.to_dict() for i in infos])
        return 0
    if not infos:
        print("no snapshots yet")
        return 0
    print(f"{'ID':12}  {'TIME (UTC)':19}  {'SIZE':>10}  {'STORED':>10}  NAME / TAGS")
    for i in infos:
        tags = " ".join(f"{k}={v}" for k, v in sorted(i.tags.items()))
        label = " ".join(x for x in (i.name, tags) if x)
        print(f"{i.id[:12]}  {i.time[:19].replace('T', ' ')}  {human_bytes(i.bytes):>10}  "
              f"{human_bytes(i.stored_bytes):>10}  {safe(label)}")
    return 0


def cmd_check(args: argparse.Namespace, ctx: Context) -> int:
    from engine.store.snapshot import CheckReport

    with ctx.session() as session:
        result = Launcher(ctx, args).run_one(session, jobkinds.spec(CheckParams(args.read_data)))
    if result is None:
        return 0
    report = CheckReport(**result)
    if ctx.json:
        print_json(dataclasses.asdict(report))
    else:
        what = "structure and data" if report.read_data else "structure"
        for problem in report.problems:
            print(f"problem: {problem}")
        for warning in report.warnings:
            print(f"warning: {warning}")
        if report.damaged_snapshots:
            print("damaged snapshots: " + " ".join(s[:12] for s in report.damaged_snapshots))
        if report.ok:
            print(f"no problems found ({what}; {report.snapshots} snapshots, {report.packs} "
                  f"packs, {report.blobs} blobs)")
    if not report.ok:
        if not ctx.json:
            print_error(f"the store has {len(report.problems)} problems"
                        + ("; damaged snapshots: "
                           + ", ".join(s[:12] for s in report.damaged_snapshots)
                           if report.damaged_snapshots else ""))
        return EXIT_PROBLEM
    return 0

