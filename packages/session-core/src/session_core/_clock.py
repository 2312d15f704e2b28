"""Time as leases see it: epoch seconds to stamp expiries, and a wait between renewals. Tests
hand in a clock they move themselves, so lease expiry is tested without waiting for it."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class LeaseClock(Protocol):
    """``clock()`` is now in epoch seconds; ``await clock.sleep(s)`` returns once ``s``
    seconds of that clock have passed."""

    def __call__(self) -> float:
        """Now, in epoch seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until ``seconds`` of this clock have passed."""
        ...


class SystemClock:
    """The wall clock (what production uses)."""

    def __call__(self) -> float:
        """``time.time()``."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``."""
        await asyncio.sleep(seconds)
