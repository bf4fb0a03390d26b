"""A job row is drawn from the job's events alone (a JobView folded from them)."""
from __future__ import annotations

from engine.jobs import DONE, FAILED, RUNNING, JobError, JobEvent, JobView, to_plain
from engine.scaleway.flows import BackupOutcome, RestoreOutcome
from tui.widgets.jobs import job_headline, job_summary

T0 = 1_795_000_000.0


def _events(kind: str, *more: JobEvent) -> list[JobEvent]:
    spec = {"kind": kind, "params": {}, "title": f"{kind} v"}
    return [JobEvent("j1", 1, "submitted", "pending", data={"spec": spec}, time=T0),
            JobEvent("j1", 2, "state", RUNNING, time=T0),
            JobEvent("j1", 3, "phase", RUNNING, "transfer", bytes_total=100 << 20, time=T0),
            *more]


def _running_backup(stored: int | None) -> JobView:
    counters = {} if stored is None else {"stored_bytes": stored}
    return JobView.from_events(_events("backup", JobEvent(
        "j1", 4, "progress", RUNNING, "transfer", 40 << 20, 100 << 20, 1e6, data=counters,
        time=T0 + 1)))


def _finished(kind: str, state: str, result: object = None,
              error: JobError | None = None) -> JobView:
    data = {"result": to_plain(result)} if result is not None else {
        "error": to_plain(error)}
    return JobView.from_events(_events(kind, JobEvent(
        "j1", 4, "progress", RUNNING, "transfer", 40 << 20, 100 << 20, 1e6,
        data={"stored_bytes": 0}, time=T0 + 1), JobEvent(
        "j1", 5, "phase", RUNNING, "cleanup", time=T0 + 2), JobEvent(
        "j1", 6, "finished", state, "cleanup", data=data, time=T0 + 3)))


def test_live_dedup_ratio_from_stored_bytes() -> None:
    assert "dedup 4.0×" in job_summary(_running_backup(10 << 20)).plain


def test_no_pack_written_yet_is_not_infinite_dedup() -> None:
    for stored in (None, 0):
        text = job_summary(_running_backup(stored)).plain
        assert "dedup –" in text and "∞" not in text


def test_finished_backup_shows_the_final_stored_figure() -> None:
    # the last live figure came before the packs written at the end of the backup
    view = _finished("backup", DONE, BackupOutcome(
        volume_id="v", volume_name="v", zone="fr-par-1", snapshot="s", bytes=100 << 20,
        stored_bytes=25 << 20, seconds=1.0, scw_snapshot_id="x"))
    text = job_summary(view).plain
    assert "took 3.0s" in text and "read 100.0 MiB" in text
    assert "new 25.0 MiB" in text and "dedup 4.0×" in text


def test_finished_restore_names_the_new_volume() -> None:
    view = _finished("restore", DONE, RestoreOutcome(
        volume_id="vol-new", name="n", zone="fr-par-1", project_id="p", size=1, type="sbs_5k",
        snapshot_id="s", store_snapshot="abc"))
    assert job_summary(view).plain == "took 3.0s · new volume vol-new"


def test_a_failure_shows_its_message_and_no_phase() -> None:
    view = _finished("backup", FAILED, error=JobError("bucket [x] is gone", "OperationError"))
    assert job_summary(view).plain == "after 3.0s: bucket [x] is gone"
    assert job_headline(view).plain == "✖ failed  backup v"
    assert job_headline(_running_backup(1)).plain == "▶ running  backup v · transfer"
