"""Helpers for the scaleway tests: comparing sparse volume files, finding leftovers."""
from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.jobs import JobEvent, JobRunner, JobSpec, JobView, Reporter

from engine.scaleway.api import Apis
from engine.scaleway.flows import TEMP_PREFIX, Timeouts
from engine.scaleway.inventory import TEMP_TAG

FAST = Timeouts(snapshot=60, export=60, import_=60, volume=60, poll_min=0.05, poll_max=0.3)


def data_extents(path: Path) -> list[tuple[int, int]]:
    """(start, end) of the data regions of a sparse file."""
    out: list[tuple[int, int]] = []
    size = path.stat().st_size
    with open(path, "rb") as f:
        fd, pos = f.fileno(), 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, end))
            pos = end
    return out


def same_content(a: Path, b: Path) -> bool:
    """Byte-for-byte equal over the common length (holes read as zeros), without reading
    gigabytes of holes; any extra length must be zeros too."""
    ranges = sorted(data_extents(a) + data_extents(b))
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for start, end in ranges:
            pos = start
            while pos < end:
                n = min(end - pos, 4 << 20)
                fa.seek(pos)
                fb.seek(pos)
                ca, cb = fa.read(n), fb.read(n)
                ca += bytes(n - len(ca))
                cb += bytes(n - len(cb))
                if ca != cb:
                    return False
                pos += n
    return True


def leftovers(apis: Apis, zone: str, bucket: str) -> dict[str, list[Any]]:
    s3 = apis.s3_for_zone(zone)
    objects = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=TEMP_PREFIX)
               .get("Contents", [])]
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    # every project's: a list without a project covers only the profile's default one
    snaps = [s.id for p in apis.account.list_projects_all()
             for s in apis.block.list_snapshots_all(zone=zone, project_id=p.id,
                                                    include_deleted=False)
             if TEMP_TAG in (s.tags or [])]
    return {"objects": objects, "uploads": uploads, "snapshots": snaps}


@dataclass
class Ran:
    """A flow run as a job: its view (built from its events), the flow's own return value,
    and every call it made (the view keeps only the last CALL_LOG_SIZE)."""

    view: JobView
    result: Any = None
    log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.view.id

    @property
    def state(self) -> str:
        return self.view.state

    @property
    def error(self) -> str:
        return self.view.error.message if self.view.error else ""

    @property
    def phases(self) -> list[Any]:
        return self.view.phases

    @property
    def counters(self) -> dict[str, Any]:
        return self.view.counters


def start_flow(runner: JobRunner, fn: Callable[[Reporter], Awaitable[Any]]) -> Ran:
    """Submit ``fn(reporter)`` as a job; the returned Ran fills in as it runs."""
    ran = Ran(JobView(""))

    async def work(reporter: Reporter) -> Any:
        ran.result = await fn(reporter)
        return ran.result

    def calls(event: JobEvent) -> None:
        if event.job_id == ran.view.id and event.kind == "call":
            ran.log.append(dict(event.data))

    runner.subscribe(calls)
    ran.view = runner.view(runner.submit(JobSpec("test", {}, "test"), work))
    return ran


async def run_flow(fn: Callable[[Reporter], Awaitable[Any]],
                   runner: JobRunner | None = None) -> Ran:
    runner = runner or JobRunner()
    ran = start_flow(runner, fn)
    await runner.wait(ran.id)
    return ran
