"""The Strongroom terminal app.

The App owns everything that outlives a screen: the backend, the job runner and the job event
pump. Job events arrive on any thread; they only mark a job as changed, and a 10 Hz timer
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

from engine.jobs import DONE, FAILED, Job, JobEvent, JobRunner
from tui import settings as settings_mod
from tui.backend import Backend, RestoreRequest
from tui.commands import ScreenCommands
from tui.themes import VARIABLE_DEFAULTS, default_theme_name, load_themes

VIEWS = ("inventory", "store", "jobs", "settings")
REFRESH_HZ = 10


class StrongroomApp(App[None]):
    """``clock`` gives "now" to everything that shows elapsed time (tests pin it)."""

    CSS_PATH = "app.tcss"
    TITLE = "Strongroom"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("question_mark", "help", "Help"),
        Binding("colon", "jump", "Jump"),
    ]

    def __init__(self, backend: Backend, app_settings: settings_mod.AppSettings | None = None,
                 *, theme_dirs: list | None = None) -> None:
        super().__init__()
        self.backend = backend
        self.app_settings = app_settings or settings_mod.AppSettings()
        self.runner: JobRunner | None = None
        self._changed: set[str] = set()
        self._changed_lock = threading.Lock()
        self._announced: set[str] = set()
        self.snapshot_cache: list[Any] | None = None
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
        self.sub_title = f"profile {backend.profile} · store {backend.store_url}"

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(VARIABLE_DEFAULTS)

    def on_mount(self) -> None:
        from tui.screens.main import MainScreen

        self.runner = JobRunner()
        self.runner.subscribe(self._job_event)
        self.set_interval(1 / REFRESH_HZ, self._pump_jobs)
        for problem in self._theme_problems:
            self.notify(f"theme skipped: {problem}", severity="warning", markup=False)
        if self._theme_fallback:
            self.notify(f"theme {self._theme_fallback!r} not found; using {self.theme}",
                        severity="warning", markup=False)
        self.push_screen(MainScreen())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Workers run with exit_on_error=False: a failure becomes a message, never a crash."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.notify(f"{event.worker.name or 'background work'} failed: "
                        f"{event.worker.error}", severity="error", markup=False, timeout=10)

    # -- jobs -----------------------------------------------------------------------------
    def _job_event(self, job: Job, event: JobEvent) -> None:
        """Any thread. Coalesces: many events for one job between two ticks = one refresh."""
        with self._changed_lock:
            self._changed.add(job.id)

    def _pump_jobs(self) -> None:
        with self._changed_lock:
            changed, self._changed = self._changed, set()
        if not changed:
            return
        assert self.runner is not None
        for job_id in changed:
            job = self.runner.jobs[job_id]
            if job.finished and job_id not in self._announced:
                self._announced.add(job_id)
                self._announce(job)
        for screen in self.screen_stack:
            aware = list(screen.query(".jobs-aware"))
            if screen.has_class("jobs-aware") or hasattr(screen, "jobs_changed"):
                aware.append(screen)
            for widget in aware:
                widget.jobs_changed(changed)  # type: ignore[attr-defined]

    def _announce(self, job: Job) -> None:
        if job.kind == "backup":
            self.snapshot_cache = None
        if job.state == DONE:
            self.notify(f"✔ done: {job.title}", markup=False)
        elif job.state == FAILED:
            self.notify(f"✖ failed: {job.title}: {job.error}", severity="error", markup=False,
                        timeout=10)
        else:
            self.notify(f"■ {job.state}: {job.title}", severity="warning", markup=False)

    def start_backup(self, volume: Any) -> Job:
        assert self.runner is not None
        backend = self.backend
        return self.runner.submit(f"backup {volume.name}",
                                  lambda rep: backend.backup(rep, volume), kind="backup",
                                  volume_id=volume.id)

    def start_restore(self, request: RestoreRequest) -> Job:
        assert self.runner is not None
        backend = self.backend
        return self.runner.submit(f"restore → {request.name}",
                                  lambda rep: backend.restore(rep, request), kind="restore",
                                  volume_name=request.name)

    def cancel_job(self, job_id: str) -> None:
        if self.runner is not None and self.runner.cancel(job_id):
            self.notify("cancelling…")

    def jobs(self) -> list[Job]:
        """Newest first."""
        if self.runner is None:
            return []
        return sorted(self.runner.jobs.values(), key=lambda j: j.created, reverse=True)

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
        running = self.runner.running if self.runner else []
        if not running:
            self.exit()
            return
        from tui.screens.confirm import ConfirmScreen

        def decided(yes: bool | None) -> None:
            if yes:
                for job in running:
                    self.runner.cancel(job.id)  # type: ignore[union-attr]
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
        buckets = getattr(self.backend, "buckets", None)
        if isinstance(buckets, dict):
            buckets.clear()
            buckets.update(new.buckets)


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


def run(ctx: Any) -> int:
    """Entry point for `strongroom` / `strongroom tui`."""
    from tui.backend import EngineBackend

    app_settings = settings_mod.load()
    store_url = ctx.store_url  # --store, else STRONGROOM_STORE, else the settings, else default
    try:
        passphrase = ctx.passphrase()
    except Exception:  # still open the app: the inventory works without the store
        passphrase = None
    backend = EngineBackend(store_url=store_url, passphrase=passphrase,
                            profile=ctx.profile or app_settings.profile or None,
                            buckets=app_settings.buckets)
    return _run(backend, app_settings)


def run_demo(*, store_url: str, passphrase: str) -> int:
    """`strongroom demo`: the environment already points at the sandbox."""
    from tui.backend import EngineBackend

    app_settings = settings_mod.load()
    app_settings.buckets = {}  # the sandbox's buckets are the default names
    backend = EngineBackend(store_url=store_url, passphrase=passphrase, label="demo")
    return _run(backend, app_settings, demo=True)


def _run(backend: Any, app_settings: settings_mod.AppSettings, demo: bool = False) -> int:
    try:
        app = StrongroomApp(backend, app_settings)
        if demo:
            app.sub_title = "demo: local sandbox · throwaway store"
        app.run()
    finally:
        backend.close()
    return 0

