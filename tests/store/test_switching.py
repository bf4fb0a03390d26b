"""The store's pipelines run with a short GIL switch interval, lowered once, never raised."""
from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store import Store
from engine.store.switching import PIPELINE_SWITCH_INTERVAL

PASSPHRASE = "switching test passphrase"


@pytest.fixture
def interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # Python's default
    yield
    sys.setswitchinterval(before)


def test_backup_and_restore_lower_the_switch_interval(tmp_path: Path, fast_kdf: None,
                                                      interval: None) -> None:
    url = str(tmp_path / "store")
    data = os.urandom(300_000)
    with Store.init(url, PASSPHRASE) as store:
        result = store.backup(io.BytesIO(data), name="x")
    assert sys.getswitchinterval() == pytest.approx(PIPELINE_SWITCH_INTERVAL)
    sys.setswitchinterval(0.005)
    with Store.open(url, PASSPHRASE) as store:
        store.restore(result.snapshot.id, tmp_path / "out.img")
    assert sys.getswitchinterval() == pytest.approx(PIPELINE_SWITCH_INTERVAL)
    assert (tmp_path / "out.img").read_bytes() == data


def test_a_lower_interval_set_by_a_driver_is_kept(tmp_path: Path, fast_kdf: None,
                                                  interval: None) -> None:
    sys.setswitchinterval(0.0001)
    with Store.init(str(tmp_path / "store"), PASSPHRASE) as store:
        store.backup(io.BytesIO(os.urandom(1000)), name="x")
    assert sys.getswitchinterval() == pytest.approx(0.0001)
