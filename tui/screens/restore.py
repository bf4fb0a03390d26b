"""The guided restore: snapshot → target → name → size → IOPS → review → progress.

Nothing is created until the person types the new volume's name on the review page. The job is
started by the App, so leaving this screen never stops it.
"""
from __future__ import annotations

import math

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import (Button, ContentSwitcher, DataTable, Footer, Header, Input, Label,
                             RadioButton, RadioSet, Select, Static)

from engine.jobkinds import RestoreParams
from engine.jobs import DONE
from engine.scaleway.config import ZONES, region_of
from engine.scaleway.inventory import ProjectInfo, VolumeInfo
from engine.scaleway.preflight import PreflightReport
from engine.store import SnapshotInfo
from tui.format import human_bytes, human_gb, in_app_terms, short_time
from tui.messages import RevealVolume
from tui.widgets.detail import volume_backups
from tui.widgets.jobs import job_headline, job_summary

STEPS = [("snapshot", "Snapshot"), ("target", "Target"), ("name", "Name"), ("size", "Size"),
         ("iops", "IOPS"), ("review", "Review"), ("progress", "Progress")]
IOPS_CLASSES = [(5000, "5000 IOPS (sbs_5k)"), (15000, "15000 IOPS (sbs_15k)")]
DONE_MARK, CURRENT_MARK = "✔", "▶"  # the steps bar says where one is in glyphs, not colour only


class TargetSelect(Select[str]):
    """A Select where enter goes on to the next step; space or the arrows open the list."""

    BINDINGS = [Binding("enter", "screen.next", "Next", show=False),
                Binding("down,space,up", "show_overlay", "Show menu", show=False)]


class IopsSet(RadioSet):
    """The IOPS classes: enter chooses the highlighted one and goes on."""

    BINDINGS = [Binding("enter", "choose", "Choose", show=False)]

    class Chosen(Message):
        def __init__(self, iops: int) -> None:
            super().__init__()
            self.iops = iops

    def action_choose(self) -> None:
        buttons = list(self.query(RadioButton))
        index = self._selected  # the highlighted button (RadioSet keeps it to itself)
        if index is None:
            index = max(self.pressed_index, 0)
        buttons[index].value = True
        self.post_message(self.Chosen(int(buttons[index].name or 5000)))


def preflight_summary(report: PreflightReport | None, error: str) -> Content:
    """One line for the review page: "✔ preflight 9/9 ok", or what is missing or unsure."""
    if report is None or error:  # the API's words: Content keeps them literal
        return Content.assemble(("✖ preflight failed: ", "$sr-error"), error or "no report")
    checks = report.checks
    passed = sum(c.ok for c in checks)
    missing = [c.name for c in checks if c.blocking]
    unsure = [c.name for c in checks if not c.ok and not c.blocking]
    if missing:
        return Content.assemble(("✖ preflight ", "$sr-error"), f"{passed}/{len(checks)} ok; "
                                f"missing: {', '.join(missing)}"
                                + (f"; unsure: {', '.join(unsure)}" if unsure else ""))
    if unsure:
        return Content.assemble(("? preflight ", "$sr-warn"), f"{passed}/{len(checks)} ok; "
                                f"unsure: {', '.join(unsure)}")
    return Content.assemble(("✔ preflight ", "$sr-ok"), f"{passed}/{len(checks)} ok")


class RestoreWizard(Screen[None]):
    HELP_TITLE = "restore wizard"
    CSS_PATH = "restore.tcss"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+n", "next", "Next"),
        Binding("enter", "go_to_volume", "Go to volume", show=False),
    ]

    def __init__(self, *, volume: VolumeInfo | None = None,
                 snapshot: SnapshotInfo | None = None) -> None:
        super().__init__()
        self.volume, self.snapshot = volume, snapshot
        self.step = 0
        self.params: RestoreParams | None = None
        self.job_id: str | None = None
        self._submitting = False
        self.checks_ok = False
        self._iops_choice = IOPS_CLASSES[0][0]
        self._project_labels: dict[str, str] = {}
        self.add_class("jobs-aware")

    # -- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="▣")
        yield Static(id="steps")
        with ContentSwitcher(initial="snapshot", id="pages"):
            with Vertical(id="snapshot"):
                yield Label("Which backup to restore?", classes="question")
                yield DataTable(id="snap-table", cursor_type="row", zebra_stripes=True)
            with Vertical(id="target"):
                yield Label("Where should the new volume live? (default: where it came from)",
                            classes="question")
                yield Label("project")
                yield TargetSelect([], id="project", prompt="loading projects…")
                yield Label("zone")
                yield TargetSelect([(z, z) for z in ZONES], id="zone", allow_blank=False)
            with Vertical(id="name"):
                yield Label("Name of the new volume", classes="question")
                yield Input(id="name-input")
                yield Static(id="name-check", classes="check")
            with Vertical(id="size"):
                yield Label("Size in GB (at least the original; volumes only grow)",
                            classes="question")
                yield Input(id="size-input", type="integer")
                yield Static(id="size-check", classes="check")
            with Vertical(id="iops"):
                yield Label("Performance class", classes="question")
                with IopsSet(id="iops-set"):
                    for value, label in IOPS_CLASSES:
                        yield RadioButton(label, name=str(value))
            with Vertical(id="review"):
                # at 80x24 all of it shows but the preflight's details: its summary line
                # sits beside the confirm box, the details scroll below
                yield Static(id="review-text")
                yield Label("Type the new volume's name to confirm, then enter:")
                with Horizontal(id="confirm-row"):
                    yield Input(id="confirm-input")
                    yield Static(id="preflight-summary")
                with VerticalScroll(id="review-scroll"):
                    yield Static(id="preflight")
            with Vertical(id="progress"):
                yield Label(id="job-headline")
                yield Label(id="job-summary")
                yield Static(id="job-end")
        with Horizontal(id="nav"):
            yield Button("Back (esc)", id="back-btn", compact=True)
            yield Button("Next (ctrl+n)", id="next-btn", variant="primary", compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._load_projects()
        table = self.query_one("#snap-table", DataTable)
        table.add_columns("id", "time (UTC)", "volume", "size", "zone")
        snaps = self.app.snapshot_cache  # type: ignore[attr-defined]
        if snaps is None:
            status = None
            self._load_snapshots()
        else:
            status = snaps
        if self.snapshot is not None:
            self._fill_snapshots([self.snapshot])
            self.goto(1)
        elif status is not None:
            self._fill_snapshots(status)
            self.goto(0)
        else:
            self.goto(0)

    @work(thread=True, group="wizard", exit_on_error=False)
    def _load_snapshots(self) -> None:
        status = self.app.session.store_status()  # type: ignore[attr-defined]
        self.app.call_from_thread(self._fill_snapshots, status.snapshots if status.ok else [],
                                  "" if status.ok else in_app_terms(status.message))

    def _fill_snapshots(self, snaps: list[SnapshotInfo], problem: str = "") -> None:
        table = self.query_one("#snap-table", DataTable)
        table.clear()
        if self.volume is not None:
            snaps = volume_backups(snaps, self.volume.id)
        self._snaps = {s.id: s for s in snaps}
        for s in sorted(snaps, key=lambda s: s.time, reverse=True):
            src = s.source
            table.add_row(s.id[:8], short_time(s.time), Text(str(src.get("volume_name", "–"))),
                          human_bytes(s.bytes), Text(str(src.get("zone", "–"))), key=s.id)
        if not snaps:
            what = f" of {self.volume.name}" if self.volume is not None else ""
            table.border_subtitle = problem or f"no backup{what} in the store yet"

    @work(thread=True, group="wizard", exit_on_error=False)
    def _load_projects(self) -> None:
        try:
            projects = self.app.session.list_projects()  # type: ignore[attr-defined]
        except Exception as exc:
            self.app.call_from_thread(self.notify, f"cannot list projects: {exc}",
                                      severity="error", markup=False)
            projects = []
        self.app.call_from_thread(self._fill_projects, projects)

    def _fill_projects(self, projects: list[ProjectInfo]) -> None:
        select = self.query_one("#project", Select)
        self._project_labels = {p.id: f"{p.name or p.id} ({p.id[:8]})"
                                for p in projects}
        select.set_options([(Text(label), pid) for pid, label in self._project_labels.items()])
        if self.snapshot is not None:
            self._default_target()

    # -- steps ----------------------------------------------------------------------------
    def goto(self, step: int) -> None:
        self.step = step
        key = STEPS[step][0]
        self.query_one(ContentSwitcher).current = key
        parts = []
        for i, (_, title) in enumerate(STEPS):
            mark = DONE_MARK if i < step else CURRENT_MARK if i == step else str(i + 1)
            style = "bold reverse" if i == step else ("" if i < step else "$text-muted")
            parts.append((f" {mark} {title} ", style))
            if i < len(STEPS) - 1:
                parts.append(("›", "$text-muted"))
        self.query_one("#steps", Static).update(Content.assemble(*parts))
        self.query_one("#pages").border_title = \
            f"step {step + 1} of {len(STEPS)} · {STEPS[step][1]}"
        self.query_one("#nav").display = key != "progress"
        focus = {"snapshot": "#snap-table", "target": "#project", "name": "#name-input",
                 "size": "#size-input", "iops": "#iops-set", "review": "#confirm-input"}.get(key)
        if focus:
            self.query_one(focus).focus()
        if key == "review":
            self._show_review()

    def _source(self) -> dict:
        return self.snapshot.source if self.snapshot is not None else {}

    def _original_size(self) -> int:
        if self.snapshot is None:
            return 0
        return int(self.snapshot.source.get("size") or self.snapshot.bytes or 0)

    def _default_target(self) -> None:
        src = self._source()
        project = self.query_one("#project", Select)
        pid = src.get("project_id")
        if pid and pid in self._project_labels:
            project.value = pid
        zone = src.get("zone")
        if zone in ZONES:
            self.query_one("#zone", Select).value = zone
        assert self.snapshot is not None
        base = str(src.get("volume_name") or self.snapshot.name or "volume")
        self.query_one("#name-input", Input).value = f"{base}-restored"
        self.query_one("#size-input", Input).value = str(max(1, math.ceil(
            self._original_size() / 1e9)))
        iops = int(src.get("perf_iops") or 5000)
        index = 1 if iops >= 15000 else 0
        buttons = list(self.query(RadioButton))
        buttons[index].value = True
        self._iops_choice = IOPS_CLASSES[index][0]

    def action_next(self) -> None:
        key = STEPS[self.step][0]
        if key == "snapshot":
            self._choose_snapshot()
        elif key == "target":
            if self.query_one("#project", Select).value in (Select.NULL, None):
                self.notify("choose a project", severity="warning")
                return
            self.goto(self.step + 1)
        elif key == "name":
            self._check_name()
        elif key == "size":
            if self._check_size():
                self.goto(self.step + 1)
        elif key == "iops":
            self.goto(self.step + 1)
        elif key == "review":
            self._confirm()

    def action_back(self) -> None:
        first = 1 if self.snapshot is not None and self.volume is None else 0
        if STEPS[self.step][0] == "progress" or self.step <= first:
            self.app.pop_screen()
        else:
            self.goto(self.step - 1)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "next-btn":
            self.action_next()
        elif event.button.id == "back-btn":
            self.action_back()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self._choose_snapshot()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_next()

    def _choose_snapshot(self) -> None:
        table = self.query_one("#snap-table", DataTable)
        if not table.row_count:
            self.notify("no snapshot to restore", severity="warning")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self.snapshot = self._snaps[key]
        self._default_target()
        self.goto(1)

    # name: checked against the volumes already in the target zone, in a worker
    def _target(self) -> tuple[str, str]:
        return (str(self.query_one("#project", Select).value),
                str(self.query_one("#zone", Select).value))

    def _check_name(self) -> None:
        name = self.query_one("#name-input", Input).value.strip()
        check = self.query_one("#name-check", Static)
        if not name:
            check.update(Content("✖ a name is needed"))
            return
        check.update(Content("⋯ checking for a volume of that name…"))
        project_id, zone = self._target()
        self._name_worker(name, project_id, zone)

    @work(thread=True, group="wizard-name", exclusive=True, exit_on_error=False)
    def _name_worker(self, name: str, project_id: str, zone: str) -> None:
        try:
            taken = any(v.name == name for v in
                        self.app.session.list_volumes(project_id, zone))  # type: ignore[attr-defined]
            problem = f"✖ a volume named {name!r} already exists in {zone}" if taken else ""
        except Exception as exc:
            problem = f"✖ cannot check the name: {exc}"
        self.app.call_from_thread(self._name_checked, name, problem)

    def _name_checked(self, name: str, problem: str) -> None:
        check = self.query_one("#name-check", Static)
        if problem:
            check.update(Content(problem))
            return
        check.update(Content(f"✔ {name} is free"))
        if STEPS[self.step][0] == "name":
            self.goto(self.step + 1)

    def _check_size(self) -> bool:
        check = self.query_one("#size-check", Static)
        raw = self.query_one("#size-input", Input).value.strip()
        original = self._original_size()
        try:
            gb = int(raw)
        except ValueError:
            check.update(Content("✖ a whole number of GB, please"))
            return False
        if gb * 1_000_000_000 < original:
            check.update(Content(f"✖ at least {human_gb(original)} (the original size)"))
            return False
        check.update(Content(f"✔ {gb} GB"))
        return True

    def _iops(self) -> int:
        return self._iops_choice

    @on(RadioSet.Changed)
    def iops_changed(self, event: RadioSet.Changed) -> None:
        self._iops_choice = int(event.pressed.name or IOPS_CLASSES[0][0])

    @on(IopsSet.Chosen)
    def iops_chosen(self, event: IopsSet.Chosen) -> None:
        self._iops_choice = event.iops
        if STEPS[self.step][0] == "iops":
            self.action_next()

    def _show_review(self) -> None:
        project_id, zone = self._target()
        name = self.query_one("#name-input", Input).value.strip()
        size = int(self.query_one("#size-input", Input).value.strip()) * 1_000_000_000
        assert self.snapshot is not None
        bucket = self.app.session.bucket_for(zone)  # type: ignore[attr-defined]
        # the bucket preflight checks goes with the job: the daemon reads its own settings
        self.params = RestoreParams(snapshot=self.snapshot.id, zone=zone, project_id=project_id,
                                    name=name, size=size, iops=self._iops(), bucket=bucket)
        src = self._source()
        project_label = self._project_labels.get(project_id, project_id)
        # the restore keeps the original's KMS key (engine.scaleway.flows): say so
        kms = src.get("kms_key_id")
        self.query_one("#review-text", Static).update(Content(
            f"snapshot   {self.snapshot.id[:12]} of {src.get('volume_name', '–')} "
            f"({short_time(self.snapshot.time)})\n"
            f"new volume {name}\nproject    {project_label}\nzone       {zone}\n"
            f"size       {human_gb(size)}\nIOPS       {self._iops()}\n"
            + (f"KMS key    {kms} (kept: the original's)\n" if kms else "")
            + f"via bucket {bucket} ({region_of(zone)})\n"))
        self.checks_ok = False
        self.query_one("#preflight", Static).update(Content("⋯ running preflight…"))
        self.query_one("#preflight-summary", Static).update(Content("⋯ preflight running…"))
        self.query_one("#confirm-input", Input).value = ""
        self._preflight(project_id, zone)

    @work(thread=True, group="wizard-preflight", exclusive=True, exit_on_error=False)
    def _preflight(self, project_id: str, zone: str) -> None:
        report: PreflightReport | None = None
        try:
            report = self.app.session.preflight(project_id, zone)  # type: ignore[attr-defined]
            error = ""
        except Exception as exc:
            error = " ".join(str(exc).split()) or type(exc).__name__
        self.app.call_from_thread(self._preflight_done, report, error)

    def _preflight_done(self, report: PreflightReport | None, error: str) -> None:
        """The engine says which checks block: only a known problem does; a check that could
        not be verified (a key that may not read its own IAM policies) warns."""
        checks = report.checks if report is not None else []
        lines = [Content.assemble(("preflight", "bold"))]
        for c in checks:
            glyph, style, word = (("✔", "$sr-ok", "ok") if c.ok else
                                  ("✖", "$sr-error", "failed") if c.blocking else
                                  ("?", "$sr-warn", "unsure"))
            lines.append(Content.assemble((f"{glyph} {word:<6} ", style), c.name,
                                          f"  {c.detail}" if c.detail else ""))
            if not c.ok and c.fix:
                lines.append(Content(f"         → {in_app_terms(c.fix)}"))
        if error:
            lines.append(Content.assemble(("✖ failed ", "$sr-error"), error))
        blocking = report.blocking if report is not None else []
        self.checks_ok = report is not None and not error and not blocking
        if not self.checks_ok:
            lines.append(Content("fix the failures above, then come back (esc, ctrl+n)"))
        elif not report.ok:  # type: ignore[union-attr]
            lines.append(Content.assemble(("? ", "$sr-warn"), "some checks could not be "
                                          "verified: the restore may still stop at that step"))
        self.query_one("#preflight", Static).update(Content("\n").join(lines))
        self.query_one("#preflight-summary", Static).update(preflight_summary(report, error))

    def _confirm(self) -> None:
        assert self.params is not None
        typed = self.query_one("#confirm-input", Input).value.strip()
        if not self.checks_ok:
            self.notify("preflight has not passed", severity="warning")
            return
        if typed != self.params.name:
            self.notify(f"type {self.params.name} to confirm", severity="warning",
                        markup=False)
            return
        if self._submitting:
            return
        self._submitting = True
        self.app.clear_notifications()  # "type … to confirm" is answered: not left up
        self.goto(len(STEPS) - 1)
        self.query_one("#job-headline", Label).update(Content("starting the restore…"))
        self.app.start_restore(self.params, self._submitted)  # type: ignore[attr-defined]

    def _submitted(self, job_id: str | None) -> None:
        self._submitting = False
        if not self.is_attached:  # closed meanwhile: the job shows in the jobs panel
            return
        if job_id is None:  # the app said why
            self.query_one("#job-end", Static).update(Content.assemble(
                ("✖ the restore did not start", "$sr-error"), "\n\nesc: back"))
            return
        self.job_id = job_id
        self.jobs_changed({job_id})

    # -- progress -------------------------------------------------------------------------
    def jobs_changed(self, ids: set[str]) -> None:
        if self.job_id is None or self.job_id not in ids or self.params is None:
            return
        try:
            view = self.app.jobs.view(self.job_id)  # type: ignore[attr-defined]
        except KeyError:  # forgotten, or not heard of yet
            return
        self.query_one("#job-headline", Label).update(job_headline(view))
        self.query_one("#job-summary", Label).update(job_summary(view, bar_width=30))
        end = self.query_one("#job-end", Static)
        if view.state == DONE and view.result is not None:
            kms = view.result.get("kms_key_id")
            end.update(Content.assemble(("✔ restored: ", "$sr-ok"),
                                        f"new volume {self.params.name} — id "
                                        f"{view.result['volume_id']}"
                                        + (f", encrypted with the original's KMS key {kms}"
                                           if kms else "") + "\n\n"
                                        "enter: go to the new volume · esc: back"))
            self.query_one("#progress").focus()
        elif view.finished:
            end.update(Content.assemble(("✖ restore failed: ", "$sr-error"),
                                        in_app_terms(view.error.message) if view.error else view.state,
                                        "\n\nesc: back"))

    def action_go_to_volume(self) -> None:
        """Ask the App to show the new volume in the inventory (no screen imports another)."""
        try:
            view = self.app.jobs.view(self.job_id or "")  # type: ignore[attr-defined]
        except KeyError:  # no job yet, or forgotten
            return
        if view.state != DONE or view.result is None:
            return
        result = view.result
        self.app.post_message(RevealVolume(str(result["project_id"]), str(result["zone"]),
                                           str(result["volume_id"])))
