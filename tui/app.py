"""The Strongroom terminal app.

The App owns everything that outlives a screen: the engine's :class:`~engine.session.Session`
(screens call its typed calls from thread workers), the job source and the job event pump.
Jobs are data: events, folded into :class:`~engine.jobs.JobView` s, are all that is ever drawn.
They run in the user's daemon (:class:`~tui.jobsource.DaemonJobs`: every job of the daemon
shows, and jobs go on when the app quits) or, for tests and ``STRONGROOM_NO_DAEMON=1``, in this
process (:class:`~tui.jobsource.LocalJobs`). Events arrive on any thread; they only mark a job
as changed, and a 10 Hz timer refreshes whatever shows jobs (and the header's daemon state), so
a flood of progress events costs at most ten redraws a second.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from rich.text import Text
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from engine import jobkinds
from engine.errors import UsageError
from engine.jobkinds import BackupParams, RestoreParams
from engine.jobs import DONE, FAILED, JobRunner, JobSpec, JobView
from engine.scaleway.inventory import VolumeInfo
from engine.session import Passphrase, Session
from engine.settings import Settings, load_settings
from engine.store import SnapshotInfo
from engine.units import plural
from tui.format import in_app_terms
from tui import settings as settings_mod
from tui.commands import ScreenCommands
from tui.jobsource import DaemonJobs, JobSource, LocalJobs, daemon_wanted
from tui.messages import RevealVolume
from tui.policystate import PolicyFacts
from tui.themes import VARIABLE_DEFAULTS, default_theme_name, load_themes

VIEWS = ("inventory", "store", "jobs", "policies", "settings")
REFRESH_HZ = 10


class StrongroomApp(App[None]):
    """``clock`` gives "now" to everything that shows elapsed time (tests pin it); ``jobs``
    is where jobs run (default: in this process, on ``runner`` or a new runner through
    ``session.execute``; :func:`run` gives the daemon's); the header shows their state, then
    ``where`` (default: the profile and the store)."""

    CSS_PATH = "app.tcss"
    TITLE = "Strongroom"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("question_mark", "help", "Help"),
        Binding("colon", "jump", "Jump"),
    ]

    def __init__(self, session: Session, app_settings: settings_mod.AppSettings | None = None,
                 *, jobs: JobSource | None = None, runner: JobRunner | None = None,
                 theme_dirs: list | None = None, where: str | None = None,
                 starting: tuple[str, Future[object]] | None = None) -> None:
        """``starting``: what the app waits for before its main screen (said on a screen of
        its own meanwhile), and the future that resolves when it is ready."""
        super().__init__()
        self._starting = starting
        self.session = session
        self.app_settings = app_settings or settings_mod.AppSettings()
        self.jobs: JobSource = jobs or LocalJobs(runner or JobRunner(session.execute))
        self._changed: set[str] = set()
        self._ended: set[str] = set()  # jobs seen ending while the app watched
        self._changed_lock = threading.Lock()
        self._announced: set[str] = set()
        self._status = ""
        self.snapshot_cache: list[SnapshotInfo] | None = None
        self.policy_facts: PolicyFacts | None = None  # the main screen's, once surveyed
        self.clock: Callable[[], float] = time.time
        themes = load_themes(theme_dirs)
        for theme in themes.themes.values():
            self.register_theme(theme)
        self._theme_problems = themes.problems
        wanted = self.app_settings.theme or default_theme_name()
        self._theme_fallback = ""
        if wanted not in self.available_themes:
            self._theme_fallback = wanted
            wanted = default_theme_name()
        self.theme = wanted
        self.where = where or f"profile {session.label} · store {session.store_url}"
        self._show_status()

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(VARIABLE_DEFAULTS)

    def on_mount(self) -> None:
        from tui.screens.main import MainScreen

        self.main_screen = MainScreen()
        self.jobs.listen(self._job_event)
        if self.jobs.detached:  # one thread holds the daemon's stream for the app's life
            self.run_worker(self.jobs.follow, name="daemon jobs", group="daemon-jobs",
                            thread=True, exit_on_error=False)
        self.set_interval(1 / REFRESH_HZ, self._pump_jobs)
        for problem in self._theme_problems:
            self.notify(f"theme skipped: {problem}", severity="warning", markup=False)
        if self._theme_fallback:
            self.notify(f"theme {self._theme_fallback!r} not found; using {self.theme}",
                        severity="warning", markup=False)
        if self._starting is None:
            self.push_screen(self.main_screen)
            return
        from tui.screens.starting import StartingScreen

        what, ready = self._starting
        self.push_screen(StartingScreen(what))
        self.run_worker(lambda: self._wait_ready(ready), name=what, group="starting",
                        thread=True, exit_on_error=False)

    def _wait_ready(self, ready: Future[object]) -> None:
        """Thread: the main screen once ready; a start that failed ends the app, saying why."""
        try:
            ready.result()
        except BaseException as exc:  # noqa: BLE001 (said on the terminal left behind)
            problem = " ".join(str(exc).split()) or type(exc).__name__
            self.call_from_thread(self.exit, None, 1, Text(f"strongroom: error: {problem}"))
            return
        self.call_from_thread(self.switch_screen, self.main_screen)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Workers run with exit_on_error=False: a failure becomes a message, never a crash."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.notify(f"{event.worker.name or 'background work'} failed: "
                        f"{in_app_terms(str(event.worker.error))}", severity="error",
                        markup=False, timeout=10)

    def on_unmount(self) -> None:
        self.jobs.close()  # ends the stream's thread: the app's exit waits for its threads

    # -- jobs -----------------------------------------------------------------------------
    def _job_event(self, job_id: str, ended: bool) -> None:
        """Any thread. Coalesces: many events for one job between two ticks = one refresh."""
        with self._changed_lock:
            self._changed.add(job_id)
            if ended:
                self._ended.add(job_id)

    def _show_status(self) -> None:
        status = self.jobs.status()
        if status != self._status:
            self._status = status
            self.sub_title = f"{status} · {self.where}"

    def _pump_jobs(self) -> None:
        self._show_status()
        with self._changed_lock:
            changed, self._changed = self._changed, set()
            ended, self._ended = self._ended, set()
        if not changed:
            return
        for job_id in ended:
            try:
                view = self.jobs.view(job_id)
            except KeyError:  # already forgotten
                continue
            if job_id not in self._announced:
                self._announced.add(job_id)
                self._announce(view)
        for screen in self.screen_stack:
            aware = list(screen.query(".jobs-aware"))
            if screen.has_class("jobs-aware"):
                aware.append(screen)
            for widget in aware:
                widget.jobs_changed(changed)  # type: ignore[attr-defined]

    def _announce(self, view: JobView) -> None:
        if view.kind in ("backup", "backup-image"):  # maybe into this store: read it again
            self.snapshot_cache = None
        if view.state == DONE:
            self.notify(f"✔ done: {view.title}", markup=False)
        elif view.state == FAILED:
            message = in_app_terms(view.error.message) if view.error else view.state
            self.notify(f"✖ failed: {view.title}: {message}", severity="error", markup=False,
                        timeout=10)
        else:
            self.notify(f"■ {view.state}: {view.title}", severity="warning", markup=False)

    def start_backup(self, volume: VolumeInfo) -> None:
        """Submit a backup job (the bucket the confirmation showed goes with it: the daemon
        reads its own settings)."""
        self.submit_job(jobkinds.spec(BackupParams(volume.id, volume.zone, volume.name,
                                                   bucket=self.session.bucket_for(volume.zone))))

    def start_restore(self, params: RestoreParams,
                      then: Callable[[str | None], None] | None = None) -> None:
        """Submit a restore job; ``then`` gets its id (None if it could not be submitted)."""
        self.submit_job(jobkinds.spec(params), then)

    def submit_job(self, spec: JobSpec, then: Callable[[str | None], None] | None = None) -> None:
        """Submit from a worker: reaching the daemon (or starting it) must not hold the UI."""
        async def submit() -> None:
            try:
                job_id = await self.jobs.submit(spec)
            except Exception as exc:
                problem = in_app_terms(" ".join(str(exc).split()))
                self.notify(f"could not start {spec.title}: {problem}",
                            severity="error", markup=False, timeout=10)
                job_id = None
            else:
                self._job_event(job_id, False)
            if then is not None:
                then(job_id)

        self.run_worker(submit(), name=f"start {spec.title}", group="jobs-submit",
                        exit_on_error=False)

    def cancel_job(self, job_id: str) -> None:
        async def cancel() -> None:
            if await self.jobs.cancel(job_id):
                self.notify("cancelling…")

        self.run_worker(cancel(), name="cancel the job", group="jobs-cancel",
                        exit_on_error=False)

    def on_reveal_volume(self, message: RevealVolume) -> None:
        """A screen asks to show a volume in the inventory (the wizard, after a restore)."""
        self.show_view("inventory")
        self.main_screen.reveal_volume(message.project_id, message.zone, message.volume_id)

    # -- navigation -----------------------------------------------------------------------
    def action_jump(self) -> None:
        from tui.screens.jump import JumpScreen

        self.push_screen(JumpScreen(), callback=lambda view: view and self.show_view(view))

    def action_show_view(self, view: str) -> None:
        self.show_view(view)

    def show_view(self, view: str) -> None:
        from tui.screens.jobs import JobsScreen
        from tui.screens.policies import PoliciesScreen
        from tui.screens.settings import SettingsScreen
        from tui.screens.store import StoreScreen

        while len(self.screen_stack) > 2:  # [default screen, MainScreen, ...]
            self.pop_screen()
        if view == "store":
            self.push_screen(StoreScreen())
        elif view == "jobs":
            self.push_screen(JobsScreen())
        elif view == "policies":
            self.push_screen(PoliciesScreen())
        elif view == "settings":
            self.push_screen(SettingsScreen())

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    async def action_quit(self) -> None:
        running = self.jobs.running
        if self.jobs.detached:  # they go on in the daemon: say so, on the terminal left behind
            self.exit(message=Text(continuing(len(running))) if running else None)
            return
        if not running:
            self.exit()
            return
        from tui.screens.confirm import ConfirmScreen, cancel_consequences

        async def decided(yes: bool | None) -> None:
            if yes:
                for job in running:
                    await self.jobs.cancel(job.id)
                self.exit()

        names = ", ".join(j.title for j in running[:3]) + ("…" if len(running) > 3 else "")
        self.push_screen(ConfirmScreen(
            f"{plural(len(running), 'job')} still running: {names}.",
            cancel_consequences(running),
            yes="Quit and cancel", no="Stay"), callback=decided)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for view in VIEWS:
            yield SystemCommand(f"Go to {view}", f"Show the {view} view",
                                _bind(self.show_view, view))

    def search_themes(self) -> None:
        from textual.command import CommandPalette

        from tui.theme_command import SavedThemeProvider

        self.push_screen(CommandPalette(providers=[SavedThemeProvider],
                                        placeholder="Search for themes…"))

    def choose_theme(self, name: str) -> None:
        """The palette's choice: shown, and saved as the settings screen saves it."""
        self.theme = name
        self.app_settings.theme = name
        try:
            settings_mod.save_theme(name)
        except OSError as exc:
            self.notify(f"theme not saved: {exc}", severity="error", markup=False)

    def apply_settings(self, new: settings_mod.AppSettings) -> None:
        self.app_settings = new
        if new.theme and new.theme in self.available_themes:
            self.theme = new.theme
        self.session.set_buckets(new.buckets)


def continuing(count: int) -> str:
    """What quitting says of the jobs left running in the daemon."""
    jobs = "1 job continues" if count == 1 else f"{count} jobs continue"
    return f"{jobs} in the background: strongroom jobs"


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


def _engine_settings() -> Settings:
    try:
        return load_settings()
    except Exception:  # a broken settings file must not keep the app from opening
        return Settings()


def _passphrase(ctx: Any) -> tuple[Passphrase, str | None]:
    """Read now, before the app owns the terminal (it may prompt on a TTY). When there is none,
    the app still opens (the inventory works without the store) and the store says why.
    Also the value itself, for the daemon's jobs (None when there is none)."""
    try:
        value = ctx.passphrase()
    except Exception as exc:
        problem = " ".join(str(exc).split()) or "no passphrase"

        def missing() -> str:
            raise UsageError(problem)
        return missing, None
    return (lambda: value), value


def run(ctx: Any) -> int:
    """Entry point for `strongroom` / `strongroom tui`: ``ctx`` gives ``store_url`` (--store,
    else STRONGROOM_STORE, else the settings, else the default), ``profile`` and
    ``passphrase()``."""
    app_settings = settings_mod.load()
    passphrase, value = _passphrase(ctx)
    session = Session(_engine_settings(), store_url=ctx.store_url,
                      profile=ctx.profile or app_settings.profile or None,
                      passphrase=passphrase)
    jobs: JobSource | None = None
    if daemon_wanted():
        from engine.daemon.client import job_context

        jobs = DaemonJobs(job_context(session.store_url, session.profile, value))
    return _run(session, app_settings, jobs=jobs)


def run_demo(*, store_url: str, passphrase: str, ready: Future[object] | None = None) -> int:
    """`strongroom demo`: the environment points at the sandbox once ``ready`` resolves (the
    app shows that it is starting meanwhile). Its jobs run in this process: the sandbox and
    the throwaway store end with the demo."""
    app_settings = settings_mod.load()
    app_settings.buckets = {}  # the sandbox's buckets are the default names
    settings = _engine_settings()
    settings.buckets = {}
    session = Session(settings, store_url=store_url, passphrase=lambda: passphrase,
                      label="demo")
    return _run(session, app_settings, demo=True, ready=ready)


def _run(session: Session, app_settings: settings_mod.AppSettings, demo: bool = False,
         jobs: JobSource | None = None, ready: Future[object] | None = None) -> int:
    try:
        where = "demo: local sandbox · throwaway store" if demo else None
        starting = ("Starting the sandbox: a local Scaleway API and S3 server…", ready) \
            if ready is not None else None
        app = StrongroomApp(session, app_settings, jobs=jobs, where=where, starting=starting)
        app.run()
    finally:
        session.close()
    return app.return_code or 0
