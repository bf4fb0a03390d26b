"""CLI commands of the store: init, key passwd, backup-image, restore-image, snapshots, check,
forget, prune."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from cli.context import Context, read_passphrase
from cli.jobrun import Launcher, add_job_options
from cli.output import print_error, print_json, safe
from cli.snapref import add_snapshot_argument, fields, resolve
from engine import jobkinds
from engine.errors import EXIT_PROBLEM, UsageError
from engine.jobkinds import (BackupImageParams, CheckParams, ForgetParams, PruneParams,
                             RestoreImageParams)
from engine.units import human_bytes, percent, plural, utc_time

PERIODS = ("hourly", "daily", "weekly", "monthly", "yearly")


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
    p.add_argument("--time", metavar="ISO8601",
                   help="record the snapshot at this time instead of now (UTC unless it has "
                        "an offset), as restic's --time")
    add_job_options(p)
    p.set_defaults(func=cmd_backup_image)

    p = sub.add_parser("restore-image", help="write a snapshot's image back, byte for byte")
    add_snapshot_argument(p)
    p.add_argument("out", metavar="OUT|-")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--sha256", action="store_true",
                   help="print the image's SHA-256 (costs a pass over the image in order)")
    add_job_options(p)
    p.set_defaults(func=cmd_restore_image)

    p = sub.add_parser("snapshots", help="list store snapshots")
    p.set_defaults(func=cmd_snapshots)

    p = sub.add_parser("check", help="verify the store")
    p.add_argument("--read-data", action="store_true",
                   help="also re-read and verify every blob")
    add_job_options(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("forget", help="remove snapshots: named ones, or those a keep policy "
                                      "does not keep (restic's rules)",
                       description="Remove snapshots. With keep rules, each rule keeps on its "
                                   "own and a snapshot stays if any rule keeps it, in each group "
                                   "(restic's forget). Only snapshots go: run prune (or give "
                                   "--prune) to get the space back.")
    p.add_argument("snapshots", nargs="*", metavar="SNAPSHOT",
                   help="snapshots to remove (id, prefix or latest:VOLUME)")
    p.add_argument("--keep-last", type=_count, default=0, metavar="N",
                   help="keep the N newest snapshots ('unlimited' for all)")
    for period in PERIODS:
        p.add_argument(f"--keep-{period}", type=_count, default=0, metavar="N",
                       help=f"keep the newest snapshot of each of the N newest {period} periods")
    p.add_argument("--keep-within", default="", metavar="DURATION",
                   help="keep snapshots less than DURATION (such as 1y2m3d4h) older than the "
                        "newest one")
    for period in PERIODS:
        p.add_argument(f"--keep-within-{period}", default="", metavar="DURATION",
                       help=f"keep the newest {period} snapshots within DURATION of the newest")
    p.add_argument("--keep-tag", action="append", default=[], metavar="KEY=VALUE[,…]",
                   help="keep snapshots carrying all these tags (repeatable)")
    p.add_argument("--group-by", choices=("volume", "name", "none"), default="volume",
                   help="apply the policy to each source volume (default; image backups by "
                        "name), each name, or all snapshots at once")
    p.add_argument("--tz", default="UTC", metavar="ZONE",
                   help="time zone of the calendar periods (default UTC), such as Europe/Paris")
    p.add_argument("--dry-run", action="store_true",
                   help="only say what would be kept (and why) and removed")
    p.add_argument("--prune", action="store_true", help="run prune afterwards")
    p.add_argument("--max-unused", type=_percent, default=5.0, metavar="PERCENT",
                   help="with --prune: see prune --max-unused")
    add_job_options(p)
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("prune", help="give back the space of data no snapshot needs",
                       description="Delete packs no snapshot needs, repack packs whose unneeded "
                                   "share is above --max-unused, consolidate the index. Runs "
                                   "beside backups: packs that a running operation might still "
                                   "use are deleted by the next prune once it has ended.")
    p.add_argument("--dry-run", action="store_true", help="only say what would be done")
    p.add_argument("--max-unused", type=_percent, default=5.0, metavar="PERCENT",
                   help="repack packs with more than PERCENT of unneeded data (default 5; "
                        "'unlimited' never repacks)")
    add_job_options(p)
    p.set_defaults(func=cmd_prune)


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
    when = utc_time(args.time) if args.time else None
    params = BackupImageParams(path, args.name, tags, when)
    with ctx.session() as session:
        work = ((lambda reporter: session.backup_image(reporter, params, sys.stdin.buffer))
                if stdin else None)
        result = Launcher(ctx, args).run_one(session, jobkinds.spec(params), work)
    if result is None:
        return 0
    snapshot = result["snapshot"]["id"]
    for warning in result.get("warnings") or []:
        print_warning(warning)
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
    with ctx.session() as session:
        info = resolve(session, args.snapshot, args.volume)
        params = RestoreImageParams(info.id, "-" if to_stdout else str(Path(args.out).resolve()),
                                    args.force, args.sha256)
        work = ((lambda reporter: session.restore_image(reporter, params, sys.stdout.buffer))
                if to_stdout else None)
        result = Launcher(ctx, args).run_one(session, jobkinds.spec(params), work)
    if result is None:
        return 0
    snapshot, seconds = result["snapshot"]["id"], result["seconds"]
    doc = {"snapshot": snapshot, "resolved": fields(info), "bytes": result["bytes"], "seconds": seconds,
           "target": "-" if to_stdout else str(Path(args.out))}
    if result.get("sha256"):
        doc["sha256"] = result["sha256"]
    warnings = result.get("warnings") or []
    for warning in warnings:
        print_warning(warning)
    if ctx.json and not to_stdout:
        print_json(doc)
    else:
        rate = result["bytes"] / seconds if seconds else 0
        print(f"restored snapshot {snapshot[:12]} ({human_bytes(result['bytes'])}) to "
              f"{doc['target']} in {seconds:.1f} s ({human_bytes(rate)}/s), verified",
              file=sys.stderr)
        if doc.get("sha256"):
            # sha256sum's format, on stderr when the image itself goes to stdout
            print(f"{doc['sha256']}  {doc['target']}",
                  file=sys.stderr if to_stdout else sys.stdout)
    return 0


def cmd_snapshots(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.session() as session:
        infos = session.snapshots()
        damaged = session.damaged_snapshots()
        for notice in session.store_notices():
            print_warning(notice)
    code = EXIT_PROBLEM if damaged else 0
    if damaged:
        print_error(f"{len(damaged)} damaged snapshot{'s' * (len(damaged) != 1)} (their "
                    "manifest cannot be read): run 'strongroom check'")
    if ctx.json:
        from engine.store.snapshot import SnapshotInfo

        blank = {f.name: None for f in dataclasses.fields(SnapshotInfo)}
        print_json([i.to_dict() | {"damaged": None} for i in infos]
                   + [blank | {"id": snap_id, "damaged": why}
                      for snap_id, why in sorted(damaged.items())])
        return code
    if not infos and not damaged:
        print("no snapshots yet")
        return 0
    print(f"{'ID':12}  {'TIME (UTC)':19}  {'SIZE':>10}  {'STORED':>10}  NAME / TAGS")
    for i in infos:
        tags = " ".join(f"{k}={v}" for k, v in sorted(i.tags.items()))
        label = " ".join(x for x in (i.name, tags) if x)
        print(f"{i.id[:12]}  {i.time[:19].replace('T', ' ')}  {human_bytes(i.bytes):>10}  "
              f"{human_bytes(i.stored_bytes):>10}  {safe(label)}")
    for snap_id, why in sorted(damaged.items()):
        print(f"{snap_id[:12]}  {'?':19}  {'?':>10}  {'?':>10}  damaged: {safe(why)}")
    return code


def print_warning(message: str) -> None:
    """One line on stderr: worth knowing, not a failure."""
    print(f"strongroom: warning: {safe(message)}", file=sys.stderr)


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
            print(f"no problems found ({what}; {plural(report.snapshots, 'snapshot')}, "
                  f"{plural(report.packs, 'pack')}, {plural(report.blobs, 'blob')})")
    if not report.ok:
        if not ctx.json:
            print_error(f"the store has {plural(len(report.problems), 'problem')}"
                        + ("; damaged snapshots: "
                           + ", ".join(s[:12] for s in report.damaged_snapshots)
                           if report.damaged_snapshots else ""))
        return EXIT_PROBLEM
    return 0



def _count(text: str) -> int:
    """A --keep-… count: a whole number, or 'unlimited' (-1), as restic takes it."""
    if text.strip() == "unlimited":
        return -1
    if not text.strip().isascii() or not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: use a whole number or "
                                         "'unlimited'")
    return int(text)


def _percent(text: str) -> float:
    try:
        return percent(text, "--max-unused")
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_forget(args: argparse.Namespace, ctx: Context) -> int:
    params = ForgetParams(
        list(args.snapshots), args.keep_last, args.keep_hourly, args.keep_daily,
        args.keep_weekly, args.keep_monthly, args.keep_yearly, args.keep_within,
        args.keep_within_hourly, args.keep_within_daily, args.keep_within_weekly,
        args.keep_within_monthly, args.keep_within_yearly, list(args.keep_tag), args.group_by,
        args.tz, args.dry_run, args.prune, args.max_unused)
    policy = params.policy()  # bad durations and zones: exit 2 before anything runs
    params.timezone()
    if params.snapshots and not policy.empty:
        raise UsageError("give snapshots to remove or keep rules, not both")
    if not params.snapshots and policy.empty:
        raise UsageError("no keep rule given (such as --keep-last 7): refusing to remove every "
                         "snapshot; name snapshots to remove them one by one")
    with ctx.session() as session:
        result = Launcher(ctx, args).run_one(session, jobkinds.spec(params))
    if result is None:
        return 0
    if ctx.json:
        print_json(result)
        return 0
    verb = "would remove" if result["dry_run"] else "removed"
    for group in result["groups"]:
        print(f"{safe(group['label'])}: keep {len(group['keep'])}, {verb} "
              f"{len(group['remove'])}")
        for snap in group["keep"]:
            print(f"  keep    {snap['id'][:12]}  {_when(snap['time'])}  "
                  f"{', '.join(snap['reasons'])}")
        for snap in group["remove"]:
            print(f"  remove  {snap['id'][:12]}  {_when(snap['time'])}")
    count = sum(len(g["remove"]) for g in result["groups"])
    print(f"{verb} {count} snapshot{'s' * (count != 1)}"
          + ("" if result["dry_run"] else "; run 'strongroom prune' to get the space back"
             if not result.get("prune") else ""))
    if result.get("prune"):
        _print_prune(result["prune"])
    return 0


def cmd_prune(args: argparse.Namespace, ctx: Context) -> int:
    params = PruneParams(args.dry_run, args.max_unused)
    with ctx.session() as session:
        result = Launcher(ctx, args).run_one(session, jobkinds.spec(params))
    if result is None:
        return 0
    if ctx.json:
        print_json(result)
    else:
        _print_prune(result)
    return 0


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ")


def _print_prune(r: dict) -> None:
    would = r["dry_run"]
    print(f"store: {plural(r['packs'], 'pack')}, {human_bytes(r['store_bytes'])}; snapshots "
          f"({r['snapshots']}) need {human_bytes(r['needed_bytes'])}, "
          f"{human_bytes(r['unused_bytes'])} unneeded")
    print(f"{'would delete' if would else 'deleted'} {plural(r['packs_deleted'], 'pack')} "
          f"({r['packs_repacked']} of them repacked, {human_bytes(r['bytes_repacked'])} "
          f"copied); {'would free' if would else 'freed'} {human_bytes(r['bytes_freed'])}"
          f" in {r['seconds']:.1f} s" + ("" if would else
                                         f"; index: {r['deltas_before']} → "
                                         f"{plural(r['deltas_after'], 'delta')}"))
    if r["packs_recovered"]:
        print(f"kept {plural(r['packs_recovered'], 'garbage pack')} that new snapshots need")
    if r["packs_pending"]:
        who = safe("; ".join(r["waiting_for"])) or "operations that were running"
        print(f"pending: {plural(r['packs_pending'], 'pack')} ({human_bytes(r['bytes_pending'])}) wait for "
              f"{who} to end; the next prune deletes them")
