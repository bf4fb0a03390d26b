"""`strongroom daemon` and `strongroom jobs`: the job daemon and the jobs it runs."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from cli.context import Context
from cli.jobrun import EventPrinter, follow
from cli.output import print_json, safe
from engine.daemon.client import DaemonClient
from engine.errors import EXIT_PROBLEM
from engine.jobs import DONE, FINISHED, JobView
from engine.units import human_bytes, plural


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("daemon", help="the job daemon: runs jobs beyond this terminal's life")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--stop", action="store_true", help="stop it (running jobs are cancelled)")
    what.add_argument("--status", action="store_true", help="say whether it runs, and where")
    p.add_argument("--idle", type=float, default=None, metavar="SECONDS",
                   help="exit after this long with no job and no client (default 600)")
    p.set_defaults(func=cmd_daemon)

    p = sub.add_parser("jobs", help="this user's jobs (list, show, follow, wait, cancel)")
    p.add_argument("--all", action="store_true", help="every remembered job, not the last 20")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=sub._parser_class)
    for name, text in (("show", "one job: phases, calls, result or error"),
                       ("follow", "live progress until the job ends"),
                       ("wait", "wait for the end: exit 0 done, 1 failed or cancelled"),
                       ("cancel", "cancel a job (it cleans up, then ends)")):
        a = actions.add_parser(name, help=text)
        a.add_argument("job", metavar="ID", help="job id or a unique prefix (6+ characters)")
    p.set_defaults(func=cmd_jobs)


def cmd_daemon(args: argparse.Namespace, ctx: Context) -> int:
    from engine.daemon.client import DaemonUnavailable, connect
    from engine.daemon.server import run_daemon

    if not (args.stop or args.status):
        return run_daemon(idle=args.idle)
    try:
        client = connect(start=False)
    except DaemonUnavailable:
        if ctx.json:
            print_json({"running": False})
        else:
            print("no daemon is running")
        return EXIT_PROBLEM if args.status else 0
    with client:
        hello = client.hello()
        if args.stop:
            client.stop()
    if args.stop:
        _wait_gone(hello["socket"])
        if ctx.json:
            print_json({"stopped": True, "pid": hello["pid"], "cancelled": hello["running"]})
        else:
            print(f"stopped the daemon (pid {hello['pid']}); "
                  f"cancelled {plural(hello['running'], 'job')}")
        return 0
    if ctx.json:
        print_json({"running": True, **hello})
    else:
        print(f"daemon running: pid {hello['pid']}, socket {hello['socket']}, "
              f"{plural(hello['running'], 'job')} running, "
              f"{plural(hello['clients'] - 1, 'other client')}, "
              f"since {_when(hello['started'])}")
    return 0


def _wait_gone(socket_path: str, timeout: float = 130.0) -> None:
    from pathlib import Path

    deadline = time.monotonic() + timeout
    while Path(socket_path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def cmd_jobs(args: argparse.Namespace, ctx: Context) -> int:
    from engine.daemon.client import connect

    with connect() as client:
        if args.action is None:
            jobs = client.jobs(all_jobs=args.all)
            _print_list(jobs, ctx.json)
            return 0
        job_id = _resolve(client, args.job)
        if args.action == "cancel":
            cancelled = client.cancel(job_id)
            if ctx.json:
                print_json({"job": job_id, "cancelled": cancelled})
            else:
                print(f"cancelling {job_id}" if cancelled else f"{job_id} is not running")
            return 0
        if args.action == "show":
            view = JobView.from_events(client.events(job_id))
            _print_show(view, ctx.json)
            return 0
    printer = EventPrinter(show_phases=args.action == "follow")
    if args.action == "wait":
        printer.enabled = False
    (view,) = follow([job_id], printer)
    if ctx.json:
        print_json(view.summary())
    elif args.action == "follow" or view.state != DONE:
        print(f"{view.title}: {view.state}" + (f": {view.error.message}" if view.error else ""),
              file=sys.stderr)
    return 0 if view.state == DONE else EXIT_PROBLEM


def _resolve(client: DaemonClient, ref: str) -> str:
    """The full id of a job given by a prefix (the daemon refuses unknown or ambiguous ones)."""
    return client.events(ref)[0].job_id


def _print_list(jobs: list[dict], as_json: bool) -> None:
    if as_json:
        print_json(jobs)
        return
    if not jobs:
        print("no jobs")
        return
    print(f"{'ID':12}  {'STATE':11}  {'PHASE':9}  {'PROGRESS':>21}  {'STARTED':16}  TITLE")
    for job in jobs:
        done, total = int(job["bytes_done"] or 0), int(job["bytes_total"] or 0)
        progress = f"{human_bytes(done)}/{human_bytes(total)}" if total else ""
        phase = "" if job["state"] in FINISHED else job["phase"]
        print(f"{job['id'][:12]}  {job['state']:11}  {phase:9}  {progress:>21}  "
              f"{_when(job['started']):16}  {safe(job['title'])}")


def _print_show(view: JobView, as_json: bool) -> None:
    if as_json:
        doc = view.summary()
        doc["phases"] = [{"name": p.name, "started": p.started, "ended": p.ended}
                         for p in view.phases]
        doc["calls"] = {"counts": dict(view.calls.counts), "recent": list(view.calls.recent)}
        print_json(doc)
        return
    print(f"{view.id}  {safe(view.title)}\nstate    {view.state}\nstarted  {_when(view.created)}"
          + (f"\nended    {_when(view.ended)}" if view.ended else ""))
    for phase in view.phases:
        took = f"{(phase.ended or time.time()) - phase.started:.1f} s"
        print(f"  {phase.name:12} {took}")
    if view.error:
        print(f"error    {safe(view.error.message)}")
    if view.result:
        for key, value in view.result.items():
            if isinstance(value, (str, int, float)):
                print(f"  {key:14} {safe(value)}")
    if view.calls.counts:
        print("calls    " + ", ".join(f"{k} ×{n}" for k, n in sorted(view.calls.counts.items())))


def _when(stamp: float | None) -> str:
    if not stamp:
        return "-"
    return dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")
