"""A run prunes only when the store's unused share passes the threshold, and never beside
another prune (the store's prune lock)."""
from __future__ import annotations

import io
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.policies.run import Forgotten, RunReport, _prune, _Run
from engine.store import Store
from engine.store.locks import StoreLock


class _Phases:
    """The reporter a run step talks to (phases only, here)."""

    def __init__(self) -> None:
        self.phases: list[str] = []

    def phase(self, name: str, total: int = 0, message: str = "") -> None:
        self.phases.append(name)


def _run_with_one_forgotten(store: Store) -> _Run:
    keep = store.backup(io.BytesIO(os.urandom(2_000_000)), name="keep").snapshot
    gone = store.backup(io.BytesIO(os.urandom(2_000_000)), name="gone").snapshot
    store.forget([gone.id])
    report = RunReport(forgotten=[Forgotten("p", "vol", gone.id, gone.time)])
    assert keep.id != gone.id
    return _Run(None, _Phases(), store, report, datetime.now(timezone.utc),  # type: ignore[arg-type]
                None, None)


def test_prune_waits_for_the_threshold_then_gives_space_back(tmp_path: Path,
                                                            fast_kdf: None) -> None:
    with Store.init(str(tmp_path / "s"), "pw") as store:
        run = _run_with_one_forgotten(store)
        _prune(run, above=60.0, max_unused=5.0, dry_run=False)   # about half is unused
        assert run.report.prune.startswith("not needed:") and "% unused" in run.report.prune
        before = sum(s.size for s in store.backend.list("packs/"))
        _prune(run, above=10.0, max_unused=5.0, dry_run=True)
        assert run.report.prune.startswith("would prune:")
        _prune(run, above=10.0, max_unused=5.0, dry_run=False)
        assert run.report.prune.startswith("pruned:"), run.report.prune
        assert not run.report.failed
        assert sum(s.size for s in store.backend.list("packs/")) < before * 0.7


def test_a_run_meeting_another_prune_skips_its_own(tmp_path: Path, fast_kdf: None) -> None:
    with Store.init(str(tmp_path / "s"), "pw") as store:
        run = _run_with_one_forgotten(store)
        with StoreLock(store.backend, exclusive=False, prune=True, sealer=store.sealer):
            _prune(run, above=10.0, max_unused=5.0, dry_run=False)
        assert run.report.prune == "skipped: another prune is running"
        assert not run.report.failed


@pytest.mark.parametrize("dry_run", [False, True])
def test_nothing_forgotten_nothing_pruned(tmp_path: Path, fast_kdf: None, dry_run: bool) -> None:
    with Store.init(str(tmp_path / "s"), "pw") as store:
        run = _Run(None, _Phases(), store, RunReport(), datetime.now(timezone.utc),  # type: ignore[arg-type]
                   None, None)
        _prune(run, above=0.0, max_unused=5.0, dry_run=dry_run)
        assert run.report.prune == "not needed: nothing was forgotten"
