"""Forget a volume's snapshots by a keep policy: a live preview of what the policy keeps (and
why) and removes, confirmed by typing the volume's name; then forget and prune run as one job.

The preview is the engine's own plan (``Session.plan_forget``: restic's rules). What is
confirmed is what was shown: the job removes exactly the snapshots listed as removed.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Static

from engine import jobkinds
from engine.errors import StrongroomError
from engine.jobkinds import ForgetParams
from engine.store import ForgetGroup, SnapshotInfo
from engine.units import plural
from tui.format import short_time

RULES = [("last", "last"), ("hourly", "hourly"), ("daily", "daily"), ("weekly", "weekly"),
         ("monthly", "monthly"), ("yearly", "yearly"), ("within", "within")]


@dataclass
class Preview:
    """The plan for the selected snapshot's group, or why there is none."""

    group: ForgetGroup | None
    error: str = ""

    @property
    def refused(self) -> str:
        """Why forgetting by this plan is not allowed (empty when it is)."""
        if self.error:
            return self.error
        if self.group is None:
            return "the snapshot is gone from the store"
        if not self.group.remove:
            return "this policy keeps every snapshot: nothing to forget"
        if not self.group.keep:
            return "this policy would remove every snapshot of the volume: refused"
        return ""


def params_from(values: dict[str, str]) -> ForgetParams:
    """The policy typed in the boxes (empty = rule off); a UsageError names a bad value."""
    from engine.errors import UsageError

    counts: dict[str, int] = {}
    for rule in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        text = values.get(rule, "").strip()
        if not text:
            continue
        if text == "unlimited":
            counts[f"keep_{rule}"] = -1
        elif text.isascii() and text.isdigit():
            counts[f"keep_{rule}"] = int(text)
        else:
            raise UsageError(f"keep {rule}: a whole number or 'unlimited', not {text!r}")
    params = ForgetParams(keep_within=values.get("within", "").strip(), **counts)
    params.policy()  # checks the duration
    return params


class ForgetScreen(Screen[None]):
    HELP_TITLE = "forget"
    CSS_PATH = "forget.tcss"
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, snapshot: SnapshotInfo) -> None:
        super().__init__()
        self.snapshot = snapshot
        src = snapshot.source or {}
        self.volume_name = str(src.get("volume_name") or snapshot.name or snapshot.id[:12])
        self.preview = Preview(None, "type a keep policy")

    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        with Vertical(id="forget-body"):
            yield Static(Text(f"Forget snapshots of {self.volume_name}: keep by these rules "
                              "(restic's), the others go, then prune gives the space back"),
                         id="forget-title")
            with Horizontal(id="policy"):
                for rule, label in RULES:
                    with Vertical(classes="rule"):
                        yield Label(label)
                        yield Input(placeholder="1y2m" if rule == "within" else "n",
                                    id=f"keep-{rule}")
            yield DataTable(id="preview", cursor_type="row", zebra_stripes=True)
            yield Static(id="summary")
            yield Input(placeholder=f"type {self.volume_name} to forget and prune",
                        id="confirm", disabled=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#preview", DataTable)
        table.add_columns("", "id", "time (UTC)", "why kept")
        table.border_title = "Preview"
        self.query_one("#keep-last", Input).focus()
        self._show()

    def _values(self) -> dict[str, str]:
        return {rule: self.query_one(f"#keep-{rule}", Input).value for rule, _ in RULES}

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "confirm":
            return
        self.plan(self._values())

    @work(thread=True, group="forget-preview", exclusive=True, exit_on_error=False)
    def plan(self, values: dict[str, str]) -> None:
        try:
            params = params_from(values)
            policy = params.policy()
            if policy.empty:
                preview = Preview(None, "type a keep policy")
            else:
                groups = self.app.session.plan_forget(policy)  # type: ignore[attr-defined]
                group = next((g for g in groups if any(
                    s.id == self.snapshot.id for s in [*g.keep, *g.remove])), None)
                preview = Preview(group)
        except StrongroomError as exc:
            preview = Preview(None, str(exc))
        self.app.call_from_thread(self._set, preview)

    def _set(self, preview: Preview) -> None:
        self.preview = preview
        self._show()

    def _show(self) -> None:
        table = self.query_one("#preview", DataTable)
        table.clear()
        group = self.preview.group
        if group is not None:
            rows = [("keep", s.id, s.time, ", ".join(s.reasons)) for s in group.keep] + \
                   [("remove", s.id, s.time, "") for s in group.remove]
            for action, snap_id, when, why in sorted(rows, key=lambda r: r[2], reverse=True):
                style = "bold" if action == "keep" else "dim strike"
                table.add_row(Text(action, style=style), snap_id[:12], short_time(when),
                              Text(why), key=snap_id)
        summary = self.query_one("#summary", Static)
        confirm = self.query_one("#confirm", Input)
        refused = self.preview.refused
        if refused:
            summary.update(Text(refused))
            summary.set_class(group is not None and not group.keep, "refused")
            confirm.disabled = True
            return
        assert group is not None
        summary.set_class(False, "refused")
        summary.update(Text(f"keep {len(group.keep)}, forget {len(group.remove)}: type the "
                            f"volume's name below and press enter"))
        confirm.disabled = False

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "confirm":
            return
        group = self.preview.group
        if self.preview.refused or group is None:
            return
        if event.value.strip() != self.volume_name:
            self.notify(f"type {self.volume_name} to confirm", severity="warning",
                        markup=False)
            return
        doomed = [s.id for s in group.remove]
        params = ForgetParams(snapshots=doomed, prune=True)
        self.app.submit_job(jobkinds.spec(  # type: ignore[attr-defined]
            params, f"forget {len(doomed)} of {self.volume_name} and prune"))
        self.notify(f"forgetting {plural(len(doomed), 'snapshot')} of {self.volume_name}, then pruning",
                    markup=False)
        self.app.snapshot_cache = None  # type: ignore[attr-defined]
        self.app.pop_screen()

    def action_back(self) -> None:
        self.app.pop_screen()
