"""`strongroom inventory | preflight | backup | restore`: the Scaleway side of the CLI."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING

from cli.context import Context
from cli.jobrun import Launcher, add_job_options, raise_failures
from cli.output import one_line, print_json, print_warning, safe
from cli.snapref import add_snapshot_argument, fields, resolve
from engine import jobkinds
from engine.errors import UsageError
from engine.jobkinds import BackupParams, RestoreParams
from engine.jobs import DONE
from engine.scaleway.config import ZONES
from engine.session import Session
from engine.units import human_bytes, utc_time

if TYPE_CHECKING:  # the SDK costs a quarter of a second to import: only commands that call it pay
    from engine.scaleway.inventory import VolumeInfo

GB = 1000 ** 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inventory", help="list projects, zones and volumes")
    p.add_argument("--project", action="append", help="only this project id (repeatable)")
    p.add_argument("--zone", action="append", choices=ZONES, help="only this zone (repeatable)")
    p.set_defaults(func=cmd_inventory)

    p = sub.add_parser("preflight", help="check credentials, permissions and the staging bucket")
    p.add_argument("--bucket", help="staging bucket (default: from settings, else "
                                    "strongroom-staging-<region>)")
    p.add_argument("--project", help="project id (default: the profile's default project)")
    p.add_argument("--zone", help="zone (default: the profile's default zone)")
    p.add_argument("--volume", metavar="ID", help="also check that this volume (in --zone) "
                                                   "can be exported (1 GB to 1 TB, not legacy)")
    p.set_defaults(func=cmd_preflight)

    p = sub.add_parser("backup", help="back up SBS volumes into the store")
    p.add_argument("volumes", nargs="+", metavar="VOLUME", help="volume id or unique name")
    p.add_argument("--bucket", help="staging bucket in the volume's region")
    p.add_argument("--keep", action="store_true",
                   help="keep the SBS snapshot and the staging object")
    p.add_argument("--time", metavar="ISO8601",
                   help="record the store snapshots at this time instead of now (UTC unless "
                        "it has an offset), as restic's --time")
    p.add_argument("--jobs", type=int, default=2,
                   help="volumes backed up at once with --no-daemon (default 2; the daemon "
                        "runs two at a time)")
    add_job_options(p)
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="restore a store snapshot into a new SBS volume")
    add_snapshot_argument(p)
    p.add_argument("--zone", required=True, help="zone of the new volume")
    p.add_argument("--project", help="project of the new volume (default: the original)")
    p.add_argument("--name", help="name of the new volume (default: the original's); a name "
                                  "already taken in the zone is refused")
    p.add_argument("--rename-on-clash", action="store_true",
                   help="when the name is taken, name the new volume NAME-restored-YYYYMMDD")
    p.add_argument("--size", type=int, help="size in GB (at least the original's)")
    p.add_argument("--iops", type=int, choices=(5000, 15000), help="5000 or 15000")
    p.add_argument("--bucket", help="staging bucket in the zone's region")
    add_job_options(p)
    p.set_defaults(func=cmd_restore)


# ---------------------------------------------------------------------------------------------

def cmd_inventory(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.session(ask=False) as session:
        volumes = session.inventory(projects=args.project, zones=args.zone)
        labels = _labels(session, volumes) if ctx.json else {}
    if ctx.json:
        print_json([v.to_dict() | labels.get(v.id, {}) for v in volumes])
        return 0
    rows = [("NAME", "ID", "ZONE", "PROJECT", "SIZE", "TYPE", "STATUS", "SERVER", "LAST BACKUP",
             "NOTE")]
    for v in volumes:
        rows.append((v.name, v.id, v.zone, v.project_id[:8], f"{v.size / GB:g} GB", v.type,
                     v.status, v.server or "-", (v.last_backup or "-")[:16],
                     ("csi " if v.csi else "") + (v.reason if not v.backupable else "")))
    _table(rows)
    return 0


def _labels(session: Session, volumes: list[VolumeInfo]) -> dict[str, dict[str, str | None]]:
    """Each volume's environment, data class and policy; a bad policy file leaves them out
    with a warning rather than hide the inventory."""
    try:
        labels = session.volume_labels(volumes)
    except UsageError as exc:
        print_warning(str(exc))
        return {}
    return {vid: dataclasses.asdict(one) for vid, one in labels.items()}


def cmd_preflight(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.session(ask=False) as session:
        report = session.preflight(project_id=args.project, zone=args.zone, bucket=args.bucket,
                                   volume_id=args.volume)
    if ctx.json:
        print_json(report.to_dict())
    else:
        print(f"project {report.project_id or '-'}, zone {report.zone}, bucket {report.bucket}")
        for check in report.checks:
            print(f"  {check.status:16} {check.name}: {check.detail}")
            if not check.ok and check.fix:
                print(f"  {'':16}   → {check.fix}")
    return 0 if report.ok else 1


def cmd_backup(args: argparse.Namespace, ctx: Context) -> int:
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    when = utc_time(args.time) if args.time else None
    launcher = Launcher(ctx, args)
    with ctx.session() as session:
        inventory = session.inventory(with_backups=False)
        targets = [session.find_volume(ref, inventory) for ref in args.volumes]
        labels = _labels(session, targets)  # each volume's own, recorded in its snapshot
        specs = [(jobkinds.spec(BackupParams(
            v.id, v.zone, v.name, args.bucket, args.keep or None, when,
            environment=labels.get(v.id, {}).get("environment"),
            data_class=labels.get(v.id, {}).get("data_class"))), None) for v in targets]
        views = launcher.run(session, specs, concurrency=args.jobs)
    if views is None:
        return 0
    results = [{key: view.result[key] for key in ("volume_id", "volume_name", "snapshot",
                                                  "bytes", "stored_bytes")}
               for view in views if view.state == DONE and view.result]
    if ctx.json:
        print_json(results)
    else:
        for r in results:
            print(f"{r['volume_name']}\t{r['snapshot']}\t{human_bytes(r['bytes'])} read, "
                  f"{human_bytes(r['stored_bytes'])} new")
    raise_failures(views)
    return 0


def cmd_restore(args: argparse.Namespace, ctx: Context) -> int:
    if args.zone not in ZONES:
        raise UsageError(f"unknown zone {args.zone!r}: use one of {', '.join(ZONES)}")
    with ctx.session() as session:
        # resolved here, once: the job restores the snapshot this command named, whatever
        # is backed up between now and when it starts
        info = resolve(session, args.snapshot, args.volume)
        params = RestoreParams(info.id, args.zone, args.project, args.name,
                               args.size * GB if args.size else None, args.iops, args.bucket,
                               rename_on_clash=args.rename_on_clash)
        views = Launcher(ctx, args).run(
            session, [(jobkinds.spec(params, f"restore {info.id[:12]}"), None)])
    if views is None:
        return 0
    (view,) = views
    raise_failures([view])
    out = view.result or {}
    if ctx.json:
        print_json({key: out.get(key) for key in ("volume_id", "snapshot_id", "name", "zone",
                                                 "size", "type", "resumed")}
                   | {"resolved": fields(info)})
    else:
        print(f"{out['volume_id']}\t{safe(out['name'])}")  # the name may have been changed
        if out.get("resumed"):
            print(one_line(f"finished volume {out['name']}, which an interrupted run of this "
                           f"restore had left half-made"), file=sys.stderr)
    for warning in out.get("warnings") or []:
        print_warning(str(warning))
    return 0


def _table(rows: list[tuple[str, ...]]) -> None:
    rows = [tuple(safe(cell) for cell in row) for row in rows]  # names and tags are untrusted
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
