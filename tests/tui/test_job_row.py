"""The jobs panel's dedup figure while a backup runs."""
from __future__ import annotations

from engine.jobs import RUNNING, Job
from tui.widgets.jobs import job_summary


def _running_backup(stored: int | None) -> Job:
    job = Job(id="job-1", title="backup v", kind="backup", state=RUNNING,
              bytes_done=40 << 20, bytes_total=100 << 20)
    if stored is not None:
        job.extra["stored_bytes"] = stored
    return job


def test_live_dedup_ratio_from_stored_bytes() -> None:
    assert "dedup 4.0×" in job_summary(_running_backup(10 << 20)).plain


def test_no_pack_written_yet_is_not_infinite_dedup() -> None:
    for stored in (None, 0):
        text = job_summary(_running_backup(stored)).plain
        assert "dedup –" in text and "∞" not in text
