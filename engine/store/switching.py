"""The interpreter's GIL switch interval while the store's thread pipelines run.

A backup or restore hands every chunk through several threads, and each of them drops the GIL
for its C calls (BLAKE3, zstd, AES-GCM, reads and writes) then needs it back. With Python's
default 5 ms interval a thread back from a 5 µs AES call can wait up to 5 ms for a thread that
runs Python meanwhile, while a core idles. At 0.5 ms the backup of bench v1 went from 2.25 to
2.19 s and the restore from S3 from 1.75 to 1.69 s (medians of five and four runs,
alternating; `bench/README.md`). The interval is process-wide, so it is lowered once and never
raised back (a driver's own setting, if lower, is kept).
"""
from __future__ import annotations

import sys

PIPELINE_SWITCH_INTERVAL = 0.0005  # seconds


def short_switches() -> None:
    """Lower the GIL switch interval for the pipelines (never raises it)."""
    if sys.getswitchinterval() > PIPELINE_SWITCH_INTERVAL:
        sys.setswitchinterval(PIPELINE_SWITCH_INTERVAL)
