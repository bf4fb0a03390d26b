"""`strongroom run | status | policies`: what the policies say is due, done unattended; and
whether every volume meets its policy (engine/policies/)."""
from __future__ import annotations

import argparse
from datetime import timedelta

from cli.context import Context
from cli.jobrun import Launcher, add_job_options, raise_failures
from cli.output import print_json, print_warning, safe
from engine import jobkinds
from engine.errors import UsageError
from engine.jobkinds import RunParams
from engine.policies.durations import show_period
from engine.units import human_bytes, utc_time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="back up every due volume, forget, prune and verify as the "
                                   "policies say (for cron, systemd timers, Kubernetes)")
    add_run_arguments(p)
    add_job_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="whether every volume meets its policy (exit 1 when one "
                                      "is overdue)")
    p.add_argument("--time", metavar="ISO8601", help="judge as if it were this time")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("policies", help="each policy with its volumes, and why they match")
    p.set_defaults(func=cmd_policies)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """`run`'s own arguments (the deployment files' test parses their commands with these)."""
    p.add_argument("--policy", metavar="NAME", help="only this policy's volumes")
    p.add_argument("--shard", metavar="I/N",
                   help="only the I-th of N shares of the volumes (1-based; a stable hash of "
                        "each volume's id), so that N machines or pods share the work")
    p.add_argument("--dry-run", action="store_true", help="say what would be done; do nothing")
    p.add_argument("--time", metavar="ISO8601",
                   help="run as if it were this time: due-ness is judged and backups are "
                        "recorded at it (tests, catching up)")
    p.add_argument("--bucket", help="staging bucket (default: from settings, per region)")
    p.add_argument("--jobs", type=int, default=0,
                   help="volumes backed up at once (default: [run] jobs in settings, else 2)")


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    if args.shard is not None:
        from engine.policies.run import Shard  # the policy engine: only for the commands that run it
        Shard.parse(args.shard)
    if args.jobs < 0:
        raise UsageError("--jobs must be at least 1")
    params = RunParams(args.policy, args.shard, args.dry_run,
                       utc_time(args.time) if args.time else None, args.bucket, args.jobs)
    with ctx.session() as session:
        views = Launcher(ctx, args).run(session, [(jobkinds.spec(params), None)])
    if views is None:
        return 0
    raise_failures(views, titled=False)
    report = views[0].result or {}
    if ctx.json:
        print_json(report)
    else:
        _print_run(report)
    return 1 if report.get("failed") else 0


def _print_run(r: dict) -> None:
    verb = "would back up" if r.get("dry_run") else "due"
    for d in r.get("due", []):
        print(f"{verb}\t{safe(d['volume_name'])}\t{d['volume_id']}\tpolicy {safe(d['policy'])}"
              f"\tnewest {d['newest'] or 'none'}")
    for b in r.get("backed_up", []):
        print(f"backed up\t{safe(b['volume_name'])}\t{b['snapshot'][:12]}\t"
              f"policy {safe(b['policy'])}\t{human_bytes(b['stored_bytes'])} new")
    for s in r.get("skipped", []):
        print(f"skipped\t{safe(s['volume_name'])}\t{safe(s['why'])}")
    verb = "would forget" if r.get("dry_run") else "forgot"
    for f in r.get("forgotten", []):
        print(f"{verb}\t{f['snapshot'][:12]}\t{f['time'][:19]}\tpolicy {safe(f['policy'])}")
    print(f"not due: {len(r.get('not_due', []))} volume(s); prune: {r.get('prune')}; "
          f"verify: {r.get('verify')}")
    for f in r.get("failed", []):
        what = safe(f.get("volume_name") or f.get("volume_id") or f.get("step"))
        print_warning(f"{f['step']} {what} failed: {f['error']}")


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    when = utc_time(args.time) if args.time else None
    with ctx.session() as session:
        from engine.policies.status import parse_time
        rows = session.volume_statuses(parse_time(when) if when else None)
    if ctx.json:
        print_json([r.to_dict() for r in rows])
    else:
        table = [("VOLUME", "ID", "POLICY", "STATE", "LAST BACKUP", "AGE", "VERIFIED", "WHY")]
        for r in rows:
            table.append((r.volume_name, r.volume_id, r.policy or "-", r.state,
                          (r.last_backup or "-")[:16],
                          show_period(timedelta(seconds=int(r.age_seconds)))
                          if r.age_seconds is not None else "-",
                          ((r.last_verified or "never")[:16] if r.backups else "-")
                          + (" (due)" if r.verify_due else ""),
                          r.why))
        _table(table)
    return 1 if any(r.state == "overdue" for r in rows) else 0


def cmd_policies(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.session(ask=False) as session:
        survey = session.policy_survey()
    survey.require_matches()
    doc = []
    for policy in survey.config.policies:
        doc.append({
            "name": policy.name, "where": policy.where,
            "match": {k: list(v) for k, v in policy.match.given()},
            "every": show_period(policy.every), "grace": show_period(policy.grace),
            "verify": show_period(policy.verify) if policy.verify else None,
            "keep": policy.keep_text,
            "volumes": [{"volume_id": v.volume.id, "volume_name": v.volume.name,
                         "environment": v.labels.environment,
                         "data_class": v.labels.data_class,
                         "why": list(v.assignment.reasons)}
                        for v in survey.volumes_of(policy)],
            "also_matched_by_earlier": [
                {"volume_id": v.volume.id, "volume_name": v.volume.name,
                 "policy": v.policy.name if v.policy else None}
                for v in survey.matching(policy) if v.policy is not policy],
        })
    without = [{"volume_id": v.volume.id, "volume_name": v.volume.name,
                "environment": v.labels.environment, "data_class": v.labels.data_class}
               for v in survey.volumes if v.policy is None]
    if ctx.json:
        print_json({"policies": doc, "no_policy": without})
        return 0
    for p in doc:
        keep = ", ".join(f"{k}={v}" for k, v in p["keep"].items()) or "-"
        match = ", ".join(f"{k}={'|'.join(v)}" for k, v in p["match"].items())
        print(f"[{safe(p['name'])}] ({p['where']}) match {safe(match)}; every {p['every']}; "
              f"keep {keep}; verify {p['verify'] or '-'}")
        for v in p["volumes"]:
            print(f"  {safe(v['volume_name'])}\t{v['volume_id']}\t{safe('; '.join(v['why']))}")
        for v in p["also_matched_by_earlier"]:
            print(f"  ({safe(v['volume_name'])} matches too, but takes {safe(v['policy'])}: "
                  "the first policy in the file wins)")
    if without:
        print("no policy: " + ", ".join(safe(v["volume_name"]) for v in without))
    return 0


def _table(rows: list[tuple[str, ...]]) -> None:
    rows = [tuple(safe(cell) for cell in row) for row in rows]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
