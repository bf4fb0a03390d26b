"""Shared fixtures. Each area keeps its own fixtures in tests/<area>/conftest.py or here,
named for what they provide."""
from __future__ import annotations

import os

import pytest

# Each area keeps its fixtures in its own module so the areas grow apart.
pytest_plugins = [f"tests.fixtures.{area}" for area in
                  ("store", "sandbox", "scaleway", "explore", "tui")]


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never touch the developer's real store, cache or config from a test."""
    home = tmp_path_factory.mktemp("home")
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_CACHE_HOME", "cache"),
                     ("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state")):
        monkeypatch.setenv(var, str(home / sub))
    for var in list(os.environ):
        if var.startswith(("SCW_", "STRONGROOM_")):
            monkeypatch.delenv(var, raising=False)
    yield
