"""The app as a client of the real daemon (a process, started on demand): it shows every job of
the daemon live, whoever started it, submits and cancels through it, and leaves its jobs running
when it quits.

Jobs that must stay running read a FIFO fed a MiB at a time (tests/daemon's SlowSource), or
back up a sandbox volume with the sandbox's latency fault on.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.daemon.client import job_context
from engine.daemon.paths import daemon_paths
from engine.jobs import CANCELLED, DONE, INTERRUPTED, RUNNING, EventKind, JobEvent, JobView
from engine.session import Session
from engine.settings import Settings
from tests.daemon.test_daemon import SlowSource
from tests.fixtures.store import PASSPHRASE, CliResult
from tests.tui.helpers import screen_text, wait_for
from tui.app import StrongroomApp
from tui.jobsource import DaemonJobs, view_of_summary
from tui.settings import AppSettings

MiB = 1024 * 1024


@pytest.fixture
def slow_source(tmp_path: Path) -> Iterator[SlowSource]:
    source = SlowSource(tmp_path / "slow.fifo")
    yield source
    source.close()


@pytest.fixture
def daemon_app(store_dir: Path) -> Iterator[Callable[[], StrongroomApp]]:
    """A factory of the real app whose jobs go to this test's daemon, on the store_cli store."""
    sessions: list[Session] = []

    def make() -> StrongroomApp:
        session = Session(Settings(), store_url=str(store_dir), passphrase=lambda: PASSPHRASE)
        sessions.append(session)
        jobs = DaemonJobs(job_context(str(store_dir), None, PASSPHRASE))
        return StrongroomApp(session, AppSettings(theme="strongroom-dark"), jobs=jobs,
                             theme_dirs=[])

    yield make
    for session in sessions:
        session.close()


async def cli(store_cli: Callable[..., CliResult], *args: str) -> CliResult:
    """The CLI, run from a thread: the app's loop goes on drawing meanwhile."""
    return await asyncio.to_thread(store_cli, *args)


async def detach(store_cli: Callable[..., CliResult], *args: str) -> str:
    res = await cli(store_cli, "--json", *args, "--detach")
    assert res.code == 0, res.stderr
    return str(json.loads(res.out)["job"])


def shown(app: StrongroomApp, job_id: str) -> JobView | None:
    try:
        return app.jobs.view(job_id)
    except KeyError:
        return None


def test_a_summary_makes_the_same_row_as_the_events() -> None:
    spec = {"kind": "backup-image", "params": {"path": "/x"}, "title": "backup-image x"}
    events = [JobEvent("j" * 32, 1, "submitted", "pending", data={"spec": spec}, time=100.0),
              JobEvent("j" * 32, 2, "state", RUNNING, time=100.5),
              JobEvent("j" * 32, 3, "phase", RUNNING, "transfer", bytes_total=10, time=101.0),
              JobEvent("j" * 32, 4, "finished", "failed", "transfer", 5, 10, time=102.0,
                       data={"error": {"message": "[b]no[/b]", "type": "X", "exit_code": 1,
                                       "traceback": ""}, "calls": {}})]
    view = JobView.from_events(events)
    again = view_of_summary(json.loads(json.dumps(view.summary())))
    assert again.summary() == view.summary()
    assert again.message == "[b]no[/b]" and again.finished and again.phases == []


async def test_a_cli_job_shows_live_then_its_result(
        daemon_app, store_cli, slow_source: SlowSource) -> None:  # noqa: ANN001
    app = daemon_app()
    async with app.run_test(size=(120, 30)) as pilot:
        # the app started the daemon and follows it
        await wait_for(pilot, lambda: "daemon: idle" in screen_text(pilot), what="the header")
        job = await detach(store_cli, "backup-image", str(slow_source.path), "--name", "cli-job")
        await wait_for(pilot, lambda: (shown(app, job) or JobView("")).bytes_done >= 2 * MiB,
                       what="the CLI's job, reading")
        first = app.jobs.view(job).bytes_done
        await wait_for(pilot, lambda: app.jobs.view(job).bytes_done >= first + 2 * MiB,
                       what="its progress, live")
        await wait_for(pilot, lambda: "backup-image cli-job" in screen_text(pilot)
                       and "daemon: 1 running" in screen_text(pilot), what="its row")
        assert app.jobs.view(job).state == RUNNING
        slow_source.close()  # the end of the image: the job finishes
        await wait_for(pilot, lambda: app.jobs.view(job).state == DONE, what="the job's end")
        await wait_for(pilot, lambda: "✔ done" in screen_text(pilot)
                       and "daemon: idle" in screen_text(pilot), what="the done row")
        result = app.jobs.view(job).result
        snapshots = json.loads((await cli(store_cli, "--json", "snapshots")).out)
        assert [s["id"] for s in snapshots] == [result["snapshot"]["id"]]
        assert result["bytes"] == slow_source.fed


async def test_two_apps_show_the_same_live_progress(
        daemon_app, store_cli, slow_source: SlowSource) -> None:  # noqa: ANN001
    one, two = daemon_app(), daemon_app()
    async with one.run_test(size=(100, 30)) as p1, two.run_test(size=(100, 30)) as p2:
        job = await detach(store_cli, "backup-image", str(slow_source.path), "--name", "both")
        for app, pilot in ((one, p1), (two, p2)):
            await wait_for(pilot, lambda app=app: (shown(app, job) or JobView("")).bytes_done
                           >= 3 * MiB, what="the job in each app")
        # each app folds the same stream: both hear every event (nothing is shared but the daemon)
        seen: dict[str, list[int]] = {"one": [], "two": []}
        one.jobs.listen(lambda job_id, ended: seen["one"].append(one.jobs.view(job_id).seq))
        two.jobs.listen(lambda job_id, ended: seen["two"].append(two.jobs.view(job_id).seq))
        await wait_for(p1, lambda: len(seen["one"]) > 5 and len(seen["two"]) > 5,
                       what="live events in both")
        slow_source.close()
        for app, pilot in ((one, p1), (two, p2)):
            await wait_for(pilot, lambda app=app: app.jobs.view(job).state == DONE)
            await wait_for(pilot, lambda pilot=pilot: "✔ done" in screen_text(pilot))
        assert one.jobs.view(job).summary() == two.jobs.view(job).summary()
        assert one.jobs.view(job).seq == two.jobs.view(job).seq


async def test_cancel_goes_to_the_daemon(
        daemon_app, store_cli, slow_source: SlowSource) -> None:  # noqa: ANN001
    app = daemon_app()
    async with app.run_test(size=(100, 30)) as pilot:
        job = await detach(store_cli, "backup-image", str(slow_source.path), "--name", "doomed")
        await wait_for(pilot, lambda: (shown(app, job) or JobView("")).bytes_done > MiB)
        await pilot.press("j")  # every job of the daemon
        await wait_for(pilot, lambda: type(app.screen).__name__ == "JobsScreen")
        await wait_for(pilot, lambda: "doomed" in screen_text(pilot))
        await pilot.press("x")  # asks first
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.jobs.view(job).state == CANCELLED, what="cancelled")
        await wait_for(pilot, lambda: "■ cancelled" in screen_text(pilot))
    assert (await cli(store_cli, "jobs", "wait", job)).code == 1
    listed = json.loads((await cli(store_cli, "--json", "jobs")).out)
    assert [j["state"] for j in listed if j["id"] == job] == [CANCELLED]


async def test_history_from_the_journal_and_a_daemon_that_comes_back(
        daemon_app, store_cli, slow_source: SlowSource, tmp_path: Path) -> None:  # noqa: ANN001
    image = tmp_path / "small.img"
    image.write_bytes(os.urandom(MiB))
    done = await detach(store_cli, "backup-image", str(image), "--name", "earlier")
    assert (await cli(store_cli, "jobs", "wait", done)).code == 0
    app = daemon_app()  # opened after the job ended: it comes from the daemon's journal
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: shown(app, done) is not None, what="the finished job")
        assert app.jobs.view(done).state == DONE
        lost = await detach(store_cli, "backup-image", str(slow_source.path), "--name", "lost")
        await wait_for(pilot, lambda: (shown(app, lost) or JobView("")).bytes_done > MiB)
        # the daemon dies with the job running: the app says so, and waits for it to come back
        os.kill(int(daemon_paths().lock.read_text()), signal.SIGKILL)
        await wait_for(pilot, lambda: "daemon: not running" in screen_text(pilot))
        slow_source.close()
        assert (await cli(store_cli, "jobs")).code == 0  # starts a new daemon
        await wait_for(pilot, lambda: app.jobs.view(lost).state == INTERRUPTED, timeout=30,
                       what="the job interrupted, once the app is back on the new daemon")
        await wait_for(pilot, lambda: "daemon: idle" in screen_text(pilot))
        await pilot.press("j")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "JobsScreen")
        await wait_for(pilot, lambda: "↯ interrupted" in screen_text(pilot)
                       and "✔ done" in screen_text(pilot), what="both in the jobs screen")
        await pilot.press("down", "enter")  # the older one: its detail reads its journal
        await wait_for(pilot, lambda: type(app.screen).__name__ == "JobDetailScreen")
        phases = app.screen.query_one("#phases")
        await wait_for(pilot, lambda: phases.row_count >= 1, what="its phases, fetched")
        assert app.screen.job_id == done
        assert any(e.kind == EventKind.FINISHED.value for e in app.jobs.events(done))


async def test_quitting_leaves_the_apps_backup_running_in_the_daemon(
        scw_env, sandbox_faults, daemon_app, store_cli, capsys) -> None:  # noqa: ANN001
    from tests.tui.test_sandbox import open_first_volume

    sandbox_faults.faults(latency_ms=400)  # every API call slow: the backup outlives the app
    app = daemon_app()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = await open_first_volume(pilot)
        volume = tree.cursor_node.data.obj
        await pilot.press("b")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "BackupConfirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.jobs.running, what="the backup, in the daemon")
        (job,) = app.jobs.running
        listed = json.loads((await cli(store_cli, "--json", "jobs")).out)
        assert [(j["kind"], j["state"]) for j in listed if j["id"] == job.id] == [
            ("backup", RUNNING)]
        assert job.params["volume_id"] == volume.id
        await pilot.press("ctrl+q")  # no question: the job goes on
        await pilot.pause(0.2)
    assert app.return_code == 0
    # said on the terminal the app leaves behind
    assert "1 job continues in the background: strongroom jobs" in capsys.readouterr().err
    listed = json.loads((await cli(store_cli, "--json", "jobs")).out)
    assert [j["state"] for j in listed if j["id"] == job.id] == [RUNNING]
    sandbox_faults.faults()
    assert (await cli(store_cli, "jobs", "wait", job.id)).code == 0
