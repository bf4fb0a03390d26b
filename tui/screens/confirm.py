"""A yes/no question in a modal: y/enter says yes, n/esc says no. Also what quitting with jobs
running says they leave behind when cancelled."""
from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from engine.jobs import JobView

# What a cancelled flow removes and what stays, as engine/scaleway/flows.py does it: a restore
# deletes its staging object (an unfinished upload is aborted), its imported snapshot and a
# volume still being created; once the volume is ready (the "cleanup" phase) it is the result.
BACKUP_CANCELLED = "A cancelled backup leaves no snapshot in the store."
RESTORE_CANCELLED = ("{title}: cancelling now deletes its staging object, its imported snapshot "
                     "and the volume it is creating; nothing stays.")
RESTORE_CANCELLED_LATE = ("{title}: its new volume is created and stays; cancelling now "
                          "deletes its staging object and its imported snapshot.")


def cancel_consequences(jobs: Sequence[JobView]) -> str:
    """What quitting (which cancels these jobs) leaves, job by job where it differs."""
    lines = ["Quitting cancels them."]
    if any(j.kind == "backup" for j in jobs):
        lines.append(BACKUP_CANCELLED)
    for job in jobs:
        if job.kind == "restore":
            late = job.phase == "cleanup"
            lines.append((RESTORE_CANCELLED_LATE if late else RESTORE_CANCELLED).format(
                title=job.title or "the restore"))
    return "\n".join(lines)


class ConfirmScreen(ModalScreen[bool]):
    CSS_PATH = "confirm.tcss"
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str | Content, detail: str | Content = "", *,
                 yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self._question, self._detail, self._yes, self._no = question, detail, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self._plain(self._question), id="question")
            if self._detail:
                yield Static(self._plain(self._detail), id="detail")
            with Horizontal(id="buttons"):
                yield Button(f"{self._yes} (y)", variant="primary", id="yes")
                yield Button(f"{self._no} (n)", id="no")

    @staticmethod
    def _plain(text: str | Content) -> Content:
        return text if isinstance(text, Content) else Content(text)

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
