"""The job runner: jobs as data, numbered events, bounded journals, failures as data."""
from __future__ import annotations

import asyncio
import json
import threading
import uuid

import pytest

from engine import jobkinds
from engine.errors import UsageError
from engine.jobs import (CALL_LOG_SIZE, CANCELLED, DONE, FAILED, EventKind, JobEvent, JobRunner,
                         JobSpec, JobView, Reporter)
from engine.scaleway.flows import BackupOutcome

SPEC = JobSpec("check", {"read_data": True}, "check --read-data")


async def _every_kind(reporter: Reporter) -> BackupOutcome:
    reporter.phase("transfer", total=100, message="s3://bucket/key")
    reporter.progress(40, stored_bytes=7)
    reporter.progress(100, stored_bytes=9)
    reporter.call("GET", "/bucket/key", 200, 12.345)
    return BackupOutcome("vol-1", "data", "fr-par-1", "abc123", 100, 9, 1.5, "snap-1")


async def test_every_event_kind_round_trips_through_json() -> None:
    runner = JobRunner()
    seen: list[JobEvent] = []
    runner.subscribe(seen.append)
    job_id = runner.submit(SPEC, _every_kind)
    view = await runner.wait(job_id)
    assert view.state == DONE
    assert {e.kind for e in seen} == {k.value for k in EventKind}
    for event in seen:
        wire = json.dumps(event.to_dict())
        assert JobEvent.from_dict(json.loads(wire)) == event
    # a driver in another process rebuilds the same view from the wire
    rebuilt = JobView.from_events(JobEvent.from_dict(json.loads(json.dumps(e.to_dict())))
                                  for e in seen)
    assert rebuilt.result == view.result
    assert rebuilt.result["stored_bytes"] == 9 and rebuilt.result["snapshot"] == "abc123"
    assert rebuilt.counters == {"stored_bytes": 9}
    assert [p.name for p in rebuilt.phases] == ["transfer"]
    assert rebuilt.title == "check --read-data" and rebuilt.params == {"read_data": True}


async def test_events_are_numbered_from_one_and_the_last_carries_the_result() -> None:
    runner = JobRunner()
    job_id = runner.submit(SPEC, _every_kind)
    await runner.wait(job_id)
    events = runner.events(job_id)
    seqs = [e.seq for e in events]
    assert seqs[0] == 1 and seqs == sorted(set(seqs))  # gaps: superseded progress is dropped
    assert JobView.from_events(events) == runner.view(job_id)
    assert events[0].kind == "submitted" and events[-1].kind == "finished"
    assert events[-1].data["result"]["volume_id"] == "vol-1"
    assert events[-1].data["calls"] == {"GET 200": 1}
    assert runner.events(job_id, since=events[-2].seq) == [events[-1]]
    uuid.UUID(job_id)  # ids are uuids


async def test_a_failure_is_data_with_its_exit_code() -> None:
    async def bad(reporter: Reporter) -> None:
        raise UsageError("no volume 'x': give an id")

    runner = JobRunner()
    view = await runner.wait(runner.submit(SPEC, bad))
    assert view.state == FAILED
    assert view.error is not None
    assert (view.error.message, view.error.exit_code) == ("no volume 'x': give an id", 2)
    assert runner.events(view.id)[-1].data["error"]["type"] == "UsageError"


async def test_cancel_ends_a_running_job_as_cancelled() -> None:
    started = asyncio.Event()

    async def slow(reporter: Reporter) -> None:
        started.set()
        await asyncio.sleep(30)

    runner = JobRunner()
    job_id = runner.submit(SPEC, slow)
    await started.wait()
    assert runner.cancel(job_id)
    view = await runner.wait(job_id)
    assert view.state == CANCELLED and view.ended is not None
    assert not runner.cancel(job_id)  # finished: nothing to cancel


async def test_the_call_log_is_bounded_but_counts_every_call() -> None:
    async def chatty(reporter: Reporter) -> None:
        for i in range(CALL_LOG_SIZE * 3):
            reporter.call("PUT", f"/bucket/key?partNumber={i}", 200, 1.0)

    runner = JobRunner()
    job_id = runner.submit(SPEC, chatty)
    view = await runner.wait(job_id)
    assert len(view.calls.recent) == CALL_LOG_SIZE
    assert view.calls.counts["PUT 200"] == CALL_LOG_SIZE * 3
    assert view.calls.recent[-1]["path"].endswith(f"={CALL_LOG_SIZE * 3 - 1}")
    journal = runner.events(job_id)
    assert sum(e.kind == "call" for e in journal) == CALL_LOG_SIZE


async def test_progress_keeps_only_the_newest_event_in_the_journal() -> None:
    async def busy(reporter: Reporter) -> None:
        reporter.phase("transfer", total=10_000)
        for done in range(0, 10_001, 10):
            reporter.progress(done)

    runner = JobRunner()
    job_id = runner.submit(SPEC, busy)
    await runner.wait(job_id)
    progress = [e for e in runner.events(job_id) if e.kind == "progress"]
    assert len(progress) == 1 and progress[0].bytes_done == 10_000


async def test_finished_jobs_are_trimmed_from_memory() -> None:
    gate = asyncio.Event()

    async def quick(reporter: Reporter) -> int:
        await gate.wait()
        return 1

    runner = JobRunner(keep_finished=3)
    ids = [runner.submit(SPEC, quick) for _ in range(8)]
    waits = [asyncio.ensure_future(runner.wait(job_id)) for job_id in ids]
    await asyncio.sleep(0)
    gate.set()
    views = await asyncio.gather(*waits)
    assert all(v.state == DONE for v in views)
    kept = {v.id for v in runner.views()}
    assert len(kept) == 3 and kept <= set(ids)


async def test_a_reporter_may_be_called_from_threads() -> None:
    async def threaded(reporter: Reporter) -> None:
        reporter.phase("work", total=4000)

        def worker() -> None:
            for _ in range(1000):
                reporter.call("GET", "/x", 200, 1)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        await asyncio.to_thread(lambda: [t.join() for t in threads])

    runner = JobRunner()
    job_id = runner.submit(SPEC, threaded)
    view = await runner.wait(job_id)
    events = runner.events(job_id)
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    assert view.calls.counts["GET 200"] == 4000


async def test_the_runner_executes_specs_through_its_executor() -> None:
    got: list[JobSpec] = []

    async def execute(spec: JobSpec, reporter: Reporter) -> dict[str, str]:
        got.append(spec)
        return {"kind": spec.kind}

    runner = JobRunner(execute)
    view = await runner.wait(runner.submit(SPEC))
    assert got == [SPEC] and view.result == {"kind": "check"}


@pytest.mark.parametrize("params", [
    jobkinds.BackupParams("vol-1", "fr-par-1", "data", "bucket", True),
    jobkinds.RestoreParams("abc123", "nl-ams-1", "proj", "new", 20 * 10**9, 15000, None),
    jobkinds.BackupImageParams("/tmp/disk.qcow2", "disk", {"env": "prod"}),
    jobkinds.RestoreImageParams("latest", "/tmp/out.qcow2"),
    jobkinds.CheckParams(read_data=True),
    jobkinds.RestoreFilesParams("abc123", "/etc", "/tmp/out"),
    jobkinds.BackupImageParams("/tmp/disk.qcow2", time="2026-11-30T10:00:00.000000Z"),
    jobkinds.ForgetParams(keep_daily=7, keep_within="1m", keep_tags=["env=prod"], prune=True,
                          tz="Europe/Paris", max_unused=10.0),
    jobkinds.ForgetParams(snapshots=["abc123", "def456"]),
    jobkinds.PruneParams(dry_run=True, max_unused=2.5),
])
def test_every_job_kind_round_trips_through_json(params: object) -> None:
    spec = jobkinds.spec(params)
    again = JobSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert jobkinds.params_of(again) == params


def test_a_bad_spec_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown job kind"):
        jobkinds.params_of(JobSpec("format-disk", {}))
    with pytest.raises(UsageError, match="unknown parameter"):
        jobkinds.params_of(JobSpec("check", {"read_data": True, "force": True}))
    with pytest.raises(UsageError, match="restore"):
        jobkinds.params_of(JobSpec("restore", {"zone": "fr-par-1"}))


def test_phase_messages_do_not_repeat_the_phase() -> None:
    """Drivers show a phase as "{phase} {message}": a message that starts with the phase's own
    name read "snapshot snapshot of …"."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    call = re.compile(r'phase\("(\w+)"[^)]*message=f?"(\w+)')
    repeated = [f"{path.relative_to(root)}: {m.group(0)}"
                for path in (root / "engine").rglob("*.py")
                for m in call.finditer(path.read_text()) if m.group(1) == m.group(2)]
    assert repeated == []
