"""The two entry points the command line calls build the Session the app is given, and say
where its jobs run: the daemon (with the session's store, profile and passphrase), or this
process for the demo and with STRONGROOM_NO_DAEMON=1."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

import tui.app
from engine.errors import UsageError
from engine.session import Session
from engine.store import Store
from tui.jobsource import DaemonJobs, JobSource


@dataclass
class Ctx:
    """What the command line hands over: store_url, profile, passphrase()."""

    store_url: str
    profile: str | None
    secret: str | None = None

    def passphrase(self) -> str:
        if self.secret is None:
            raise UsageError("no passphrase: set STRONGROOM_PASSPHRASE or "
                             "STRONGROOM_PASSPHRASE_FILE, or run on a terminal")
        return self.secret


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Session, bool]]:
    calls: list[tuple[Session, bool]] = []
    monkeypatch.setattr(tui.app, "_run", lambda session, settings, demo=False, jobs=None,
                        ready=None: calls.append((session, demo)) or jobs_given.append(jobs) or 0)
    jobs_given.clear()
    return calls


jobs_given: list[JobSource | None] = []


def test_run_builds_the_session_from_the_context(started, tmp_path, fast_kdf) -> None:  # noqa: ANN001
    url = str(tmp_path / "store")
    Store.init(url, "s3cret").close()
    assert tui.app.run(Ctx(url, "work", "s3cret")) == 0
    [(session, demo)] = started
    assert not demo
    assert (session.store_url, session.profile, session.label) == (url, "work", "work")
    assert session.store_status().ok  # with the context's passphrase
    session.close()
    [jobs] = jobs_given  # the daemon's, for this store, profile and passphrase
    assert isinstance(jobs, DaemonJobs)
    context = jobs._context
    assert (context.store_url, context.profile, context.passphrase) == (url, "work", "s3cret")


def test_no_daemon_runs_the_apps_jobs_in_process(started, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("STRONGROOM_NO_DAEMON", "1")
    tui.app.run(Ctx(str(tmp_path / "store"), None, "pw"))
    assert jobs_given == [None]  # the app's default: a runner in this process
    started[0][0].close()


def test_without_a_passphrase_the_app_still_opens_and_the_store_says_why(
        started, tmp_path) -> None:  # noqa: ANN001
    tui.app.run(Ctx(str(tmp_path / "store"), None))
    [(session, _)] = started
    status = session.store_status()  # what the store screen shows, the inventory goes on
    assert not status.ok and "no passphrase" in status.message


def test_run_demo_labels_the_session_and_uses_the_default_buckets(
        started, tmp_path, fast_kdf) -> None:  # noqa: ANN001
    url = str(tmp_path / "store")
    Store.init(url, "pw").close()
    tui.app.run_demo(store_url=url, passphrase="pw")
    [(session, demo)] = started
    assert demo and session.label == "demo" and session.store_status().ok
    assert session.bucket_for("nl-ams-1") == "strongroom-staging-nl-ams"
    assert jobs_given == [None]  # in-process: the sandbox and the store end with the demo
    session.close()
