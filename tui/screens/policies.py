"""`:policies` — every policy of the settings file, with its volumes' compliance and its terms.

Read from the main screen's survey (``app.policy_facts``), drawn again when it changes (a
backup ended). enter shows the policy's volumes in the inventory (the `/` filter
``policy:NAME``).
"""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from tui.policystate import PolicyFacts, policy_terms
from tui.widgets.detail import palette
from tui.widgets.keys import KeyTable

COLUMNS = ("policy", "compliance", "every", "keep", "verify")
LOOK = {"ok": "sr-ok", "due": "sr-warn", "overdue": "sr-error"}


class PoliciesScreen(Screen[None]):
    CSS_PATH = "policies.tcss"
    HELP_TITLE = "policies"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("enter", "show_volumes", "Its volumes"),
    ]

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield Static(id="policies-note")
        yield KeyTable(id="policies", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#policies", KeyTable)
        table.border_title = "Policies"
        table.add_columns(*COLUMNS)
        self.policies_changed()
        table.focus()

    def policies_changed(self) -> None:
        """The main screen surveyed the volumes again: the counts again."""
        facts: PolicyFacts | None = self.app.policy_facts  # type: ignore[attr-defined]
        table = self.query_one("#policies", KeyTable)
        note = self.query_one("#policies-note", Static)
        row = table.cursor_row
        table.clear()
        if facts is None:
            note.update("surveying the volumes… (the inventory and the store are still loading)")
            return
        if facts.problem:
            note.update(Text(f"✖ policies not applied: {facts.problem}"))
            return
        if not facts.policies:
            note.update(Text(f"no policies in {facts.path or 'the settings file'}: add a "
                             "[policies.NAME] table with match and every (see README)"))
            return
        note.update(Text(f"{len(facts.policies)} policies from the settings file · "
                         "enter shows a policy's volumes"))
        pal = palette(self.app.theme_variables)
        for policy in facts.policies:
            counts = facts.counts(policy.name)
            worst = next((s for s in ("overdue", "due") if counts[s]), "ok")
            every, keep, verify = policy_terms(policy)
            table.add_row(Text(policy.name), Text(facts.summary(policy), style=pal.get(
                LOOK[worst], "")), every, Text(keep), verify, key=policy.name)
        table.move_cursor(row=min(row, table.row_count - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_show_volumes()

    def action_show_volumes(self) -> None:
        table = self.query_one("#policies", KeyTable)
        if not table.row_count:
            return
        name = str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)
        self.app.show_view("inventory")  # type: ignore[attr-defined]
        self.app.main_screen.filter_to(f"policy:{name}")  # type: ignore[attr-defined]
