"""`strongroom inventory | preflight | backup | restore`: the Scaleway side of the CLI."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

from cli.context import Context
from cli.output import print_json, print_warning
from cli.progress import ProgressBar
from engine.errors import OperationError, UsageError
from engine.scaleway.config import ZONES, scw_client
from engine.settings import load_settings
from engine.units import human_bytes

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
    p.set_defaults(func=cmd_preflight)

    p = sub.add_parser("backup", help="back up SBS volumes into the store")
    p.add_argument("volumes", nargs="+", metavar="VOLUME", help="volume id or unique name")
    p.add_argument("--bucket", help="staging bucket in the volume's region")
    p.add_argument("--keep", action="store_true",
                   help="keep the SBS snapshot and the staging object")
    p.add_argument("--jobs", type=int, default=2, help="volumes backed up at once (default 2)")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="restore a store snapshot into a new SBS volume")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="store snapshot id, prefix or latest")
    p.add_argument("--zone", required=True, help="zone of the new volume")
    p.add_argument("--project", help="project of the new volume (default: the original)")
    p.add_argument("--name", help="name of the new volume (default: the original's)")
    p.add_argument("--size", type=int, help="size in GB (at least the original's)")
    p.add_argument("--iops", type=int, choices=(5000, 15000), help="5000 or 15000")
    p.add_argument("--bucket", help="staging bucket in the zone's region")
    p.set_defaults(func=cmd_restore)


# ---------------------------------------------------------------------------------------------

def cmd_inventory(args: argparse.Namespace, ctx: Context) -> int:
    from engine.scaleway.inventory import list_inventory

    client = scw_client(ctx.profile)
    store = _maybe_store(ctx)
    try:
        volumes = asyncio.run(list_inventory(client, store, projects=args.project,
                                             zones=args.zone or ZONES))
    finally:
        if store is not None:
            store.close()
    if ctx.json:
        print_json([v.to_dict() for v in volumes])
        return 0
    rows = [("NAME", "ID", "ZONE", "PROJECT", "SIZE", "TYPE", "STATUS", "SERVER", "LAST BACKUP",
             "NOTE")]
    for v in volumes:
        rows.append((v.name, v.id, v.zone, v.project_id[:8], f"{v.size / GB:g} GB", v.type,
                     v.status, v.server or "-", (v.last_backup or "-")[:16],
                     ("csi " if v.csi else "") + (v.reason if not v.backupable else "")))
    _table(rows)
    return 0


def cmd_preflight(args: argparse.Namespace, ctx: Context) -> int:
    from engine.scaleway.preflight import preflight

    client = scw_client(ctx.profile)
    report = asyncio.run(preflight(client, project_id=args.project, zone=args.zone,
                                   bucket=args.bucket))
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
    from engine.scaleway.flows import backup_volume
    from engine.scaleway.inventory import list_inventory

    client = scw_client(ctx.profile)
    settings = load_settings()
    inventory = asyncio.run(list_inventory(client))
    targets = [_resolve_volume(inventory, v) for v in args.volumes]
    store = _open_store(ctx)

    def make(volume: Any) -> Callable[[Any], Any]:
        return lambda reporter: backup_volume(reporter, store=store, client=client,
                                              volume_id=volume.id, zone=volume.zone,
                                              bucket=args.bucket, keep=args.keep or None,
                                              settings=settings)

    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    try:
        jobs = asyncio.run(_run_jobs([(f"backup {v.name}", make(v)) for v in targets],
                                     args.jobs))
    finally:
        store.close()
    results = [{"volume_id": j.result.volume_id, "volume_name": j.result.volume_name,
                "snapshot": j.result.snapshot, "bytes": j.result.bytes,
                "stored_bytes": j.result.stored_bytes} for j in jobs if j.state == "done"]
    if ctx.json:
        print_json(results)
    else:
        for r in results:
            print(f"{r['volume_name']}\t{r['snapshot']}\t{human_bytes(r['bytes'])} read, "
                  f"{human_bytes(r['stored_bytes'])} new")
    _raise_failures(jobs)
    return 0


def cmd_restore(args: argparse.Namespace, ctx: Context) -> int:
    from engine.scaleway.flows import restore_snapshot

    if args.zone not in ZONES:
        raise UsageError(f"unknown zone {args.zone!r}: use one of {', '.join(ZONES)}")
    client = scw_client(ctx.profile)
    store = _open_store(ctx)

    def run(reporter: Any) -> Any:
        return restore_snapshot(reporter, store=store, client=client, ref=args.snapshot,
                                zone=args.zone, project_id=args.project, name=args.name,
                                size=args.size * GB if args.size else None, iops=args.iops,
                                bucket=args.bucket)

    try:
        (job,) = asyncio.run(_run_jobs([(f"restore {args.snapshot}", run)], 1))
    finally:
        store.close()
    _raise_failures([job])
    out = job.result
    if ctx.json:
        print_json({"volume_id": out.volume_id, "snapshot_id": out.snapshot_id,
                    "name": out.name, "zone": out.zone, "size": out.size, "type": out.type})
    else:
        print(out.volume_id)
    for warning in out.warnings:
        print_warning(warning)
    return 0


# ---------------------------------------------------------------------------------------------

async def _run_jobs(specs: list[tuple[str, Callable[[Any], Any]]], concurrency: int) -> list[Any]:
    from engine.jobs import JobRunner

    runner = JobRunner(concurrency=max(1, concurrency))
    bars: dict[str, ProgressBar] = {}
    tty = sys.stderr.isatty()

    def listen(job: Any, event: Any) -> None:
        if not tty:
            return
        if event.kind == "phase":
            bars.pop(job.id, ProgressBar("")).close()
            sys.stderr.write(f"{job.title}: {event.phase} {event.message}\n")
            bars[job.id] = ProgressBar(f"{job.title}: {event.phase}")
        elif event.kind == "progress" and job.id in bars:
            bars[job.id].update(event.bytes_done, event.bytes_total)

    runner.subscribe(listen)
    jobs = [runner.submit(title, fn, kind="scaleway") for title, fn in specs]
    try:
        for job in jobs:
            await runner.wait(job.id)
    except asyncio.CancelledError:
        for job in jobs:
            runner.cancel(job.id)
        for job in jobs:
            await runner.wait(job.id)
        raise
    finally:
        for bar in bars.values():
            bar.close()
    return jobs


def _raise_failures(jobs: list[Any]) -> None:
    failed = [j for j in jobs if j.state != "done"]
    if not failed:
        return
    if any(j.state == "cancelled" for j in failed):
        raise KeyboardInterrupt
    first = failed[0]
    more = f" (and {len(failed) - 1} more failed)" if len(failed) > 1 else ""
    raise OperationError(f"{first.title}: {first.error}{more}")


def _resolve_volume(inventory: list[Any], ref: str) -> Any:
    by_id = [v for v in inventory if v.id == ref]
    matches = by_id or [v for v in inventory if v.name == ref]
    if not matches:
        raise UsageError(f"no volume {ref!r}: give an id or a name from `strongroom inventory`")
    if len(matches) > 1:
        where = ", ".join(f"{v.id} in {v.zone}" for v in matches)
        raise UsageError(f"several volumes are named {ref!r} ({where}): give the id instead")
    volume = matches[0]
    if not volume.backupable:
        raise UsageError(f"volume {volume.name} cannot be backed up: {volume.reason}")
    return volume


def _open_store(ctx: Context) -> Any:
    from engine.store import Store

    return Store.open(ctx.store_url, ctx.passphrase())


def _maybe_store(ctx: Context) -> Any:
    """The store, for last-backup columns, if it can be opened without asking anything."""
    if not (os.environ.get("STRONGROOM_PASSPHRASE") or
            os.environ.get("STRONGROOM_PASSPHRASE_FILE")):
        return None
    try:
        return _open_store(ctx)
    except (UsageError, ImportError, AttributeError):
        return None


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
