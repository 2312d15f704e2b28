"""A wall clock (epoch seconds) that moves only when a test sets ``now``."""

from __future__ import annotations

# Any fixed moment works; this one is in 2025, so dates and TTLs look like real ones.
CLOCK_START = 1_760_000_000.0


class FakeClock:
    """Epoch seconds that only move when a test says so (``clock.now += 3600``)."""

    def __init__(self, now: float = CLOCK_START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
