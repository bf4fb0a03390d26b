"""The jobs panel's dedup figure while a backup runs."""
from __future__ import annotations

import time

from engine.jobs import DONE, RUNNING, Job
from engine.scaleway.flows import BackupOutcome
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


def test_finished_backup_shows_the_final_stored_figure() -> None:
    # the last live figure came before the packs written at the end of the backup
    job = _running_backup(0)
    job.state, job.ended, job.bytes_done = DONE, time.time(), 100 << 20
    job.result = BackupOutcome(volume_id="v", volume_name="v", zone="fr-par-1", snapshot="s",
                               bytes=100 << 20, stored_bytes=25 << 20, seconds=1.0,
                               scw_snapshot_id="x")
    text = job_summary(job).plain
    assert "new 25.0 MiB" in text and "dedup 4.0×" in text
