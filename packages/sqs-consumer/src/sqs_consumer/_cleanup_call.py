"""The one Telegram call that tidies a chat once a record's outcome is out (a group's progress
message deleted, an answered approval question's buttons taken off), shared by ``LiveView`` and
``QuestionEdit``. Left undone it would show for good, so unlike a progress update it is retried
and waits out the chat's 429, each wait ending within the invocation's time left."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from telegram_core import (
    TelegramApiError,
    TelegramMessageNotFound,
    TelegramMessageNotModified,
    TelegramRetryAfter,
)

from ._chat_holds import ChatHolds

# A 5xx is retried, and a 429 waited out when it asks for at most a minute (the group limit is
# per minute; a longer one is a flood wait, not worth the idle invocation) and the invocation
# has the time left.
CLEANUP_ATTEMPTS = 3
CLEANUP_MAX_RETRY_AFTER_S = 60.0


class RetriedCall(Protocol):
    """A Bot API call still to be given the client's retry settings (a partial of one)."""

    def __call__(
        self, *, attempts: int, max_retry_after_s: float, time_left: Callable[[], float]
    ) -> object: ...


def cleanup_call(
    call: RetriedCall,
    *,
    chat_id: int,
    holds: ChatHolds,
    ends: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> str | None:
    """Make ``call`` in ``chat_id`` by ``ends`` (on ``clock``), after the chat's 429 when that
    ends in time. None when done (or its message is gone already, or an edit finds it edited
    already: an earlier attempt landed, its answer lost); else the kind of failure
    that left it undone. Never raises: the record's outcome is out, and a failure here must not
    fail (and replay) the record."""
    # A 429 is the chat's: a call before it ends is refused again, one more the chat counts.
    held_s = holds.until(chat_id) - clock()
    if held_s > 0:
        if held_s > CLEANUP_MAX_RETRY_AFTER_S or held_s >= ends - clock():
            return "rate_limited"
        sleep(held_s)
    try:
        call(
            attempts=CLEANUP_ATTEMPTS,
            max_retry_after_s=CLEANUP_MAX_RETRY_AFTER_S,
            time_left=lambda: ends - clock(),
        )
    except TelegramMessageNotFound:
        return None  # someone deleted it already
    except TelegramMessageNotModified:
        return None  # it says that already, buttons gone: an attempt landed, its answer lost
    except Exception as exc:  # Telegram's refusal, or the token's store out of reach
        if isinstance(exc, TelegramRetryAfter):
            holds.hold(chat_id, clock() + float(exc.retry_after or 1))
        return exc.kind if isinstance(exc, TelegramApiError) else type(exc).__name__
    return None
