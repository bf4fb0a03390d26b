"""The daemon's journal on disk: every job's lasting events, so that a restarted daemon still
lists finished jobs with their results, and knows which jobs it was running when it died.

One SQLite file under the state dir. Lifecycle events (submitted, state, phase, finished) are
written as they happen; progress at most once a second per job; a job's last calls when it
finishes. Only the newest ``keep`` jobs are kept. No secret is ever in an event.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict
from pathlib import Path

from engine.jobs import (FINISHED, INTERRUPTED, EventKind, JobError, JobEvent, JobView)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created REAL NOT NULL, finished INTEGER NOT NULL DEFAULT 0,
                                 store_url TEXT NOT NULL DEFAULT '', profile TEXT);
CREATE TABLE IF NOT EXISTS events (job_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
                                   body TEXT NOT NULL, PRIMARY KEY (job_id, seq));
"""
PROGRESS_EVERY = 1.0


class JobJournal:
    def __init__(self, path: Path, keep: int = 500) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self.keep = keep
        self._progress_at: dict[str, float] = {}

    def record(self, event: JobEvent) -> None:
        """Write what lasts of one event (call from one thread only)."""
        kind = event.kind
        if kind == EventKind.CALL.value:
            return  # the finished event carries the counts; the recent calls come with it
        if kind == EventKind.PROGRESS.value:
            now = time.monotonic()
            if now - self._progress_at.get(event.job_id, 0.0) < PROGRESS_EVERY:
                return
            self._progress_at[event.job_id] = now
            self._db.execute("DELETE FROM events WHERE job_id = ? AND kind = 'progress'",
                             (event.job_id,))
        if kind == EventKind.SUBMITTED.value:
            self._db.execute("INSERT OR IGNORE INTO jobs (id, created) VALUES (?, ?)",
                             (event.job_id, event.time))
        self._insert(event)
        if kind == EventKind.FINISHED.value:
            self._db.execute("UPDATE jobs SET finished = 1 WHERE id = ?", (event.job_id,))
            self._progress_at.pop(event.job_id, None)
            self._trim()

    def set_where(self, job_id: str, store_url: str, profile: str | None) -> None:
        """Which store and profile a job ran with (never its passphrase): what a restarted
        daemon needs to sweep the temporaries of a job it was running when it died."""
        self._db.execute("UPDATE jobs SET store_url = ?, profile = ? WHERE id = ?",
                         (store_url, profile, job_id))

    def where(self, job_id: str) -> tuple[str, str | None]:
        row = self._db.execute("SELECT store_url, profile FROM jobs WHERE id = ?",
                               (job_id,)).fetchone()
        return (row[0], row[1]) if row else ("", None)

    def record_calls(self, events: list[JobEvent]) -> None:
        """A finished job's last calls (its bounded call log), for `jobs show`."""
        with self._db:
            for event in events:
                if event.kind == EventKind.CALL.value:
                    self._insert(event)

    def _insert(self, event: JobEvent) -> None:
        self._db.execute("INSERT OR REPLACE INTO events (job_id, seq, kind, body) "
                         "VALUES (?, ?, ?, ?)", (event.job_id, event.seq, event.kind,
                                                 json.dumps(event.to_dict(), separators=(",", ":"))))

    def events(self, job_id: str, since: int = 0) -> list[JobEvent]:
        rows = self._db.execute("SELECT body FROM events WHERE job_id = ? AND seq > ? "
                                "ORDER BY seq", (job_id, since))
        return [JobEvent.from_dict(json.loads(body)) for (body,) in rows]

    def job_ids(self, limit: int = -1) -> list[str]:
        """Newest first (``limit`` -1: all)."""
        return [job_id for (job_id,) in
                self._db.execute("SELECT id FROM jobs ORDER BY created DESC LIMIT ?", (limit,))]

    def views(self, limit: int = -1) -> list[JobView]:
        """The newest ``limit`` jobs (-1: all), each rebuilt from its events."""
        out = []
        for job_id in self.job_ids(limit):
            events = self.events(job_id)
            if events:
                out.append(JobView.from_events(events))
        return out

    def interrupt_unfinished(self, why: str) -> list[JobView]:
        """Jobs a dead daemon was running: they end as ``interrupted``. Returns their views."""
        ended = []
        rows = self._db.execute("SELECT id FROM jobs WHERE finished = 0").fetchall()
        for (job_id,) in rows:
            events = self.events(job_id)
            if not events:
                self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                continue
            view = JobView.from_events(events)
            if view.state in FINISHED:
                continue
            error = JobError(why, "Interrupted")
            self.record(JobEvent(job_id, view.seq + 1, EventKind.FINISHED.value, INTERRUPTED,
                                 view.phase, view.bytes_done, view.bytes_total, 0.0, why,
                                 {"error": asdict(error), "calls": {}}))
            view.apply(self.events(job_id, view.seq)[-1])
            ended.append(view)
        return ended

    def _trim(self) -> None:
        old = [job_id for (job_id,) in self._db.execute(
            "SELECT id FROM jobs WHERE finished = 1 ORDER BY created DESC LIMIT -1 OFFSET ?",
            (self.keep,))]
        for job_id in old:
            self._db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def close(self) -> None:
        self._db.close()
