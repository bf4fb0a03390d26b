"""A one-line progress bar on stderr (bytes, rate, ETA), shown only when stderr is a terminal."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from engine.units import human_bytes


def human_seconds(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class ProgressBar:
    """Call ``update(done, total)`` from any thread; redraws at most 10 times a second."""

    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool | None = None):
        self.label, self.stream = label, stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self._last = 0.0

    def update(self, done: int, total: int = 0) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.1:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-6)
        rate = done / elapsed
        parts = [self.label]
        if total:
            frac = min(done / total, 1.0)
            width = 24
            parts.append("[" + "#" * int(frac * width) + "-" * (width - int(frac * width)) + "]")
            parts.append(f"{human_bytes(done)}/{human_bytes(total)}")
        else:
            parts.append(human_bytes(done))
        parts.append(f"{human_bytes(rate)}/s")
        if total and rate > 0 and done < total:
            parts.append(f"ETA {human_seconds((total - done) / rate)}")
        self.stream.write("\r" + " ".join(parts) + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
