"""The Strongroom terminal app.

The App owns everything that outlives a screen: the engine's :class:`~engine.session.Session`
(screens call its typed calls from thread workers), the job runner and the job event pump.
Jobs are data: the runner's events, folded into :class:`~engine.jobs.JobView` s, are all that
is ever drawn. Events arrive on any thread; they only mark a job as changed, and a 10 Hz timer
refreshes whatever shows jobs, so a flood of progress events costs at most ten redraws a second.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from engine import jobkinds
from engine.errors import UsageError
from engine.jobkinds import BackupParams, RestoreParams
from engine.jobs import DONE, FAILED, JobEvent, JobRunner, JobView
from engine.scaleway.inventory import VolumeInfo
from engine.session import Passphrase, Session
from engine.settings import Settings, load_settings
from engine.store import SnapshotInfo
from tui import settings as settings_mod
from tui.commands import ScreenCommands
from tui.messages import RevealVolume
from tui.themes import VARIABLE_DEFAULTS, default_theme_name, load_themes

VIEWS = ("inventory", "store", "jobs", "settings")
REFRESH_HZ = 10


class StrongroomApp(App[None]):
    """``clock`` gives "now" to everything that shows elapsed time (tests pin it); ``runner``
    defaults to one that runs jobs in this process through ``session.execute``."""

    CSS_PATH = "app.tcss"
    TITLE = "Strongroom"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("question_mark", "help", "Help"),
        Binding("colon", "jump", "Jump"),
    ]

    def __init__(self, session: Session, app_settings: settings_mod.AppSettings | None = None,
                 *, runner: JobRunner | None = None, theme_dirs: list | None = None) -> None:
        super().__init__()
        self.session = session
        self.app_settings = app_settings or settings_mod.AppSettings()
        self.runner = runner or JobRunner(session.execute)
        self._changed: set[str] = set()
        self._changed_lock = threading.Lock()
        self._announced: set[str] = set()
        self.snapshot_cache: list[SnapshotInfo] | None = None
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
        self.sub_title = f"profile {session.label} · store {session.store_url}"

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(VARIABLE_DEFAULTS)

    def on_mount(self) -> None:
        from tui.screens.main import MainScreen

        self.main_screen = MainScreen()
        self.runner.subscribe(self._job_event)
        self.set_interval(1 / REFRESH_HZ, self._pump_jobs)
        for problem in self._theme_problems:
            self.notify(f"theme skipped: {problem}", severity="warning", markup=False)
        if self._theme_fallback:
            self.notify(f"theme {self._theme_fallback!r} not found; using {self.theme}",
                        severity="warning", markup=False)
        self.push_screen(self.main_screen)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Workers run with exit_on_error=False: a failure becomes a message, never a crash."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.notify(f"{event.worker.name or 'background work'} failed: "
                        f"{event.worker.error}", severity="error", markup=False, timeout=10)

    # -- jobs -----------------------------------------------------------------------------
    def _job_event(self, event: JobEvent) -> None:
        """Any thread. Coalesces: many events for one job between two ticks = one refresh."""
        with self._changed_lock:
            self._changed.add(event.job_id)

    def _pump_jobs(self) -> None:
        with self._changed_lock:
            changed, self._changed = self._changed, set()
        if not changed:
            return
        for job_id in changed:
            try:
                view = self.runner.view(job_id)
            except KeyError:  # already trimmed from the runner's memory
                continue
            if view.finished and job_id not in self._announced:
                self._announced.add(job_id)
                self._announce(view)
        for screen in self.screen_stack:
            aware = list(screen.query(".jobs-aware"))
            if screen.has_class("jobs-aware"):
                aware.append(screen)
            for widget in aware:
                widget.jobs_changed(changed)  # type: ignore[attr-defined]

    def _announce(self, view: JobView) -> None:
        if view.kind == "backup":
            self.snapshot_cache = None
        if view.state == DONE:
            self.notify(f"✔ done: {view.title}", markup=False)
        elif view.state == FAILED:
            message = view.error.message if view.error else view.state
            self.notify(f"✖ failed: {view.title}: {message}", severity="error", markup=False,
                        timeout=10)
        else:
            self.notify(f"■ {view.state}: {view.title}", severity="warning", markup=False)

    def start_backup(self, volume: VolumeInfo) -> str:
        """Submit a backup job; its id."""
        return self.runner.submit(jobkinds.spec(BackupParams(volume.id, volume.zone,
                                                             volume.name)))

    def start_restore(self, params: RestoreParams) -> str:
        """Submit a restore job; its id."""
        return self.runner.submit(jobkinds.spec(params))

    def cancel_job(self, job_id: str) -> None:
        if self.runner.cancel(job_id):
            self.notify("cancelling…")

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
        from tui.screens.settings import SettingsScreen
        from tui.screens.store import StoreScreen

        while len(self.screen_stack) > 2:  # [default screen, MainScreen, ...]
            self.pop_screen()
        if view == "store":
            self.push_screen(StoreScreen())
        elif view == "jobs":
            self.push_screen(JobsScreen())
        elif view == "settings":
            self.push_screen(SettingsScreen())

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    async def action_quit(self) -> None:
        running = self.runner.running
        if not running:
            self.exit()
            return
        from tui.screens.confirm import ConfirmScreen

        def decided(yes: bool | None) -> None:
            if yes:
                for job in running:
                    self.runner.cancel(job.id)
                self.exit()

        names = ", ".join(j.title for j in running[:3]) + ("…" if len(running) > 3 else "")
        self.push_screen(ConfirmScreen(
            f"{len(running)} job(s) still running: {names}.",
            "Quitting cancels them; a cancelled backup leaves no snapshot in the store.",
            yes="Quit and cancel", no="Stay"), callback=decided)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for view in VIEWS:
            yield SystemCommand(f"Go to {view}", f"Show the {view} view",
                                _bind(self.show_view, view))

    def apply_settings(self, new: settings_mod.AppSettings) -> None:
        self.app_settings = new
        if new.theme and new.theme in self.available_themes:
            self.theme = new.theme
        self.session.set_buckets(new.buckets)


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


def _engine_settings() -> Settings:
    try:
        return load_settings()
    except Exception:  # a broken settings file must not keep the app from opening
        return Settings()


def _passphrase(ctx: Any) -> Passphrase:
    """Read now, before the app owns the terminal (it may prompt on a TTY). When there is none,
    the app still opens (the inventory works without the store) and the store says why."""
    try:
        value = ctx.passphrase()
    except Exception as exc:
        problem = " ".join(str(exc).split()) or "no passphrase"

        def missing() -> str:
            raise UsageError(problem)
        return missing
    return lambda: value


def run(ctx: Any) -> int:
    """Entry point for `strongroom` / `strongroom tui`: ``ctx`` gives ``store_url`` (--store,
    else STRONGROOM_STORE, else the settings, else the default), ``profile`` and
    ``passphrase()``."""
    app_settings = settings_mod.load()
    session = Session(_engine_settings(), store_url=ctx.store_url,
                      profile=ctx.profile or app_settings.profile or None,
                      passphrase=_passphrase(ctx))
    return _run(session, app_settings)


def run_demo(*, store_url: str, passphrase: str) -> int:
    """`strongroom demo`: the environment already points at the sandbox."""
    app_settings = settings_mod.load()
    app_settings.buckets = {}  # the sandbox's buckets are the default names
    settings = _engine_settings()
    settings.buckets = {}
    session = Session(settings, store_url=store_url, passphrase=lambda: passphrase,
                      label="demo")
    return _run(session, app_settings, demo=True)


def _run(session: Session, app_settings: settings_mod.AppSettings, demo: bool = False) -> int:
    try:
        app = StrongroomApp(session, app_settings)
        if demo:
            app.sub_title = "demo: local sandbox · throwaway store"
        app.run()
    finally:
        session.close()
    return 0
