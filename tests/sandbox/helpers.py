"""Small helpers the sandbox tests share."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

GB = 1_000_000_000
TRANSIENT = {"creating", "updating", "exporting", "deleting", "snapshotting", "resizing"}


def settle(get: Callable[..., Any], timeout: float = 60.0, **ids: str) -> Any:
    """Poll ``get(**ids)`` quickly until its status is no longer transient (a generous deadline:
    the suite shares a loaded machine, and a settled object returns at once)."""
    deadline = time.monotonic() + timeout
    while True:
        obj = get(**ids)
        if str(obj.status) not in TRANSIENT:
            return obj
        if time.monotonic() > deadline:
            raise AssertionError(f"still {obj.status} after {timeout} s: {ids}")
        time.sleep(0.03)
