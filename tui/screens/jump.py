"""`:` — jump to a view by typing (a prefix is enough) or picking it from the list."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

VIEWS = ("inventory", "store", "jobs", "policies", "settings")


class JumpScreen(ModalScreen[str | None]):
    CSS_PATH = "jump.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Back"),
        Binding("down", "focus_list", "List", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Input(placeholder=":inventory, store, jobs, policies, settings", id="view")
            yield OptionList(*[Option(v, id=v) for v in VIEWS], id="views")

    def on_input_changed(self, event: Input.Changed) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        text = event.value.strip().lstrip(":").lower()
        options.add_options([Option(v, id=v) for v in VIEWS if v.startswith(text)])
        if options.option_count:
            options.highlighted = 0

    def on_input_submitted(self, event: Input.Submitted) -> None:
        options = self.query_one(OptionList)
        if options.option_count:
            self.dismiss(options.get_option_at_index(options.highlighted or 0).id)
        else:
            self.notify("no such view: try inventory, store, jobs, policies or settings",
                        severity="warning")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_focus_list(self) -> None:
        self.query_one(OptionList).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
