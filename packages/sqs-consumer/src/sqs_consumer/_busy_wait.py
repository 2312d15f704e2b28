"""Waiting while another live turn holds a session, inside the invocation: one poll every
``busy_poll_s`` while time for it is left, then the record is put off (DeferredError "busy":
tried again later, never dead-lettered)."""

from __future__ import annotations

from collections.abc import Callable

from session_core import get_logger

from ._errors import DeferredError
from ._timing import ConsumerTiming

log = get_logger(__name__)


class BusyWait:
    """The polls of one wait; ``polls`` counts them."""

    def __init__(self, timing: ConsumerTiming, sleep: Callable[[float], None]) -> None:
        self._timing = timing
        self._sleep = sleep
        self.polls = 0

    def pause(self, seconds_left: float, *, holder: str) -> None:
        """Sleep one poll, or raise DeferredError("busy") when less than one is left of
        ``seconds_left``; ``holder`` names what held the session, for the record's error."""
        if seconds_left < self._timing.busy_poll_s:
            raise DeferredError("busy", f"{holder} held the session through {self.polls} polls")
        if not self.polls:
            log.info("session_busy_waiting", poll_s=self._timing.busy_poll_s, up_to_s=round(seconds_left))
        self.polls += 1
        self._sleep(self._timing.busy_poll_s)
