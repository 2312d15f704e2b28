"""The consumer's timing knobs and the invocation's remaining time; production defaults,
tests shorten them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ._live_view import POLL_S
from ._typing import FIRST_TYPING_WAIT_S, TYPING_REFRESH_S
from ._visibility_heartbeat import HEARTBEAT_INTERVAL_S, HEARTBEAT_VISIBILITY_S

RETRY_BASE_DELAY_S = 10
# Kept free of the runtime's deadline: sending a long answer, with Telegram's own retries.
DELIVERY_RESERVE_S = 45.0
# Busy waiting stops when less than this (plus the delivery reserve) is left for our own turn.
TURN_RESERVE_S = 120.0
BUSY_POLL_S = 5.0
# Kept free of the wait to delete a group's progress message: the record's own last writes.
PROGRESS_CLEANUP_RESERVE_S = 10.0
# Of the delivery reserve, the share kept free of the sends themselves (15 s of 45): the
# record's outcome after them (a part not sent is retried, or dead-lettered with the user
# told), then its progress message's deletion. A share, not seconds: a shorter reserve keeps
# room for sends.
DELIVERY_END_SHARE = 1 / 3
# A part of a reply is begun only with this long left of the time for delivery: a healthy
# Telegram answers a send well within it. A part begun with less is cut by the time bound while
# Telegram takes it all the same, and the record's retry sends it again.
DELIVERY_PART_MIN_S = 5.0

# Lambda's context.get_remaining_time_in_millis.
RemainingTimeMs = Callable[[], int]


@dataclass(frozen=True)
class ConsumerTiming:
    """How long the consumer waits for what: ``typing_interval_s`` between "typing…"
    refreshes, ``first_typing_wait_s`` at most for the first one's answer before a turn runs,
    ``busy_poll_s`` between polls of a busy session, the reserves kept free of a turn for
    delivery (``delivery_reserve_s``) and for our own turn while waiting (``turn_reserve_s``),
    the first retry's delay (``retry_base_delay_s``), the backoff of a delivery record's write
    (``record_retry_backoff_s``), how often a running turn's progress is read
    (``progress_poll_s``), and how long the batch's records are hidden
    (``heartbeat_visibility_s``) and how often that is renewed (``heartbeat_interval_s``)
    while the batch runs (``_visibility_heartbeat``)."""

    typing_interval_s: float = TYPING_REFRESH_S
    first_typing_wait_s: float = FIRST_TYPING_WAIT_S
    busy_poll_s: float = BUSY_POLL_S
    delivery_reserve_s: float = DELIVERY_RESERVE_S
    turn_reserve_s: float = TURN_RESERVE_S
    retry_base_delay_s: int = RETRY_BASE_DELAY_S
    record_retry_backoff_s: float = 0.2
    progress_poll_s: float = POLL_S
    heartbeat_visibility_s: int = HEARTBEAT_VISIBILITY_S
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S

    @property
    def delivery_end_reserve_s(self) -> float:
        """What delivery leaves of the invocation's time: every send ends that long before it."""
        return self.delivery_reserve_s * DELIVERY_END_SHARE


def time_left_of(seconds: float) -> RemainingTimeMs:
    """A remaining-time function for ``seconds`` from now (when Lambda gave none)."""
    ends = time.monotonic() + seconds
    return lambda: int((ends - time.monotonic()) * 1000)
