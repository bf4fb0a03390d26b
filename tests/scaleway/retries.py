"""A retry policy for tests that remembers the delays it chose (the policy itself, not a copy)."""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.retry import RetryPolicy


@dataclass(frozen=True)
class RecordingPolicy(RetryPolicy):
    """engine.retry's policy, unchanged, appending each delay it chooses to ``chosen``."""

    chosen: list[float] = field(default_factory=list, compare=False)

    def delay(self, attempt: int, retry_after: str | float | None = None) -> float:
        seconds = super().delay(attempt, retry_after)
        self.chosen.append(seconds)
        return seconds
