"""Settings: profile, store, staging bucket per region, theme — saved to the config file."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, Select, Static

from engine.scaleway.config import REGIONS
from engine.settings import default_bucket
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
            yield Label("Store (directory or s3://bucket/prefix)")
            yield Input(current.store, placeholder=self.app.session.store_url,  # type: ignore[attr-defined]
                        compact=True, id="store")
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

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "theme" and event.value in self.app.available_themes:
            self.app.theme = str(event.value)  # preview at once; saved with ctrl+s

    def collect(self) -> settings_mod.AppSettings:
        def val(wid: str) -> str:
            return self.query_one(f"#{wid}", Input).value.strip()

        return settings_mod.AppSettings(
            profile=val("profile"), store=val("store"), theme=str(self.query_one(Select).value),
            buckets={r: val(f"bucket-{r}") for r in REGIONS if val(f"bucket-{r}")})

    def action_save(self) -> None:
        new = self.collect()
        try:
            path = settings_mod.save(new)
        except OSError as exc:
            self.notify(f"could not save settings: {exc}", severity="error", markup=False)
            return
        self.app.apply_settings(new)  # type: ignore[attr-defined]
        self.notify(f"saved to {path}", markup=False)
