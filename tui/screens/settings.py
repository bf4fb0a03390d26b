"""Settings: profile, store, staging bucket per region, theme — saved to the config file."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.validation import Function
from textual.widgets import Footer, Header, Input, Label, Select, Static

from engine.scaleway.config import REGIONS
from engine.settings import default_bucket, store_url_problem
from tui import settings as settings_mod


class SettingsScreen(Screen[None]):
    HELP_TITLE = "settings"
    CSS_PATH = "settings.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def compose(self) -> ComposeResult:
        current = self.app.app_settings  # type: ignore[attr-defined]
        yield Header(icon="▣")
        with VerticalScroll(id="form"):
            yield Label("Scaleway profile (from the Scaleway config file)")
            yield Input(current.profile, placeholder=self.app.session.label, compact=True, id="profile")  # type: ignore[attr-defined]
            yield Label("Store on")
            on_s3 = current.store.startswith("s3://")
            yield Select([("a local directory", "local"),
                          ("Object Storage (S3): s3://bucket/prefix", "s3")],
                         value="s3" if on_s3 else "local", allow_blank=False, compact=True,
                         id="store-kind")
            yield Label("Store (directory or s3://bucket/prefix)")
            yield Input(current.store, placeholder=self._store_placeholder(on_s3),
                        compact=True, id="store",
                        validators=[Function(lambda url: not store_url_problem(url.strip()))],
                        valid_empty=True)
            yield Static(id="store-problem")
            for region in REGIONS:
                yield Label(f"Staging bucket in {region}")
                yield Input(current.buckets.get(region, ""),
                            placeholder=default_bucket(region), compact=True,
                            id=f"bucket-{region}")
            yield Label("Theme")
            themes = sorted(t for t in self.app.available_themes)
            yield Select([(t, t) for t in themes], value=self.app.theme, allow_blank=False,
                         compact=True, id="theme")
            yield Static(id="saved")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#form").border_title = "Settings"
        self.query_one("#profile", Input).focus()
        path = settings_mod.config_path()
        self.query_one("#saved", Static).update(Content(f"ctrl+s saves to {path}\n"
                                                        "profile and store apply at the next start"))

    def _store_placeholder(self, on_s3: bool) -> str:
        if on_s3:
            return "s3://bucket/prefix (the profile's region; init --create-bucket makes it)"
        return self.app.session.store_url  # type: ignore[attr-defined]

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "theme" and event.value in self.app.available_themes:
            self.app.theme = str(event.value)  # preview at once; saved with ctrl+s
        elif event.select.id == "store-kind":
            store = self.query_one("#store", Input)
            on_s3 = event.value == "s3"
            store.placeholder = self._store_placeholder(on_s3)
            if on_s3 != store.value.startswith("s3://"):
                store.value = "s3://" if on_s3 else ""

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "store":
            self._show_store_problem()

    def _show_store_problem(self) -> str:
        problem = store_url_problem(self.query_one("#store", Input).value.strip())
        shown = self.query_one("#store-problem", Static)
        shown.update(Content(problem))
        shown.display = bool(problem)  # no empty line under a good URL
        return problem

    def collect(self) -> settings_mod.AppSettings:
        def val(wid: str) -> str:
            return self.query_one(f"#{wid}", Input).value.strip()

        return settings_mod.AppSettings(
            profile=val("profile"), store=val("store"), theme=str(self.query_one("#theme", Select).value),
            buckets={r: val(f"bucket-{r}") for r in REGIONS if val(f"bucket-{r}")})

    def action_save(self) -> None:
        problem = self._show_store_problem()
        if problem:
            self.notify(f"not saved: {problem}", severity="error", markup=False)
            self.query_one("#store", Input).focus()
            return
        new = self.collect()
        try:
            path = settings_mod.save(new)
        except OSError as exc:
            self.notify(f"could not save settings: {exc}", severity="error", markup=False)
            return
        self.app.apply_settings(new)  # type: ignore[attr-defined]
        self.notify(f"saved to {path}", markup=False)
