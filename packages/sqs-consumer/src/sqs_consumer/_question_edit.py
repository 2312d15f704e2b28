"""[I] The edit that marks an approval's question answered, or dropped by /new (its buttons
gone), tried again once the record's outcome is out when Telegram refused it (a 5xx on every
retry, a 429 longer than a reply may wait): left as it was, the question would offer live
Allow/Deny buttons for a call already answered, for good. The retry is the one a group's
progress message gets (run by ``ProgressCleanup``, made by ``cleanup_call``): within the
invocation's time left, waiting out a 429 of up to a minute. Each try ends within the time it
is given, so a Telegram that does not answer never keeps the invocation past its end. A retry
Telegram answers "message is not modified" found the edit made (an attempt landed, its answer
lost): done, not refused."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from session_core import get_logger
from telegram_core import BotApi, TelegramApiError, TelegramMessageNotModified, TelegramRetryAfter

from ._chat_holds import ChatHolds
from ._cleanup_call import cleanup_call

log = get_logger(__name__)


class QuestionEdit:
    """Edit message ``message_id`` of ``chat_id`` to ``html`` (no buttons): ``first_try(...)`` with
    the client's usual retries, then, if Telegram refused, ``cleanup(time_left_s=...)`` again."""

    def __init__(
        self,
        *,
        bot: BotApi,
        chat_id: int,
        message_id: int,
        html: str,
        chat_holds: ChatHolds,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._bot = bot
        self._chat_id = chat_id
        self._message_id = message_id
        self._html = html
        self._holds = chat_holds
        self._clock = clock
        self._sleep = sleep
        self._done = False

    def first_try(self, *, time_left_s: float) -> bool:
        """Edit now, ending within ``time_left_s`` (with none left, not now); False when it is
        worth trying again later."""
        if time_left_s <= 0:
            return False  # the cleanup's turn, with the time kept for it
        ends = self._clock() + time_left_s
        try:
            self._bot.edit_message_text(
                self._chat_id, self._message_id, self._html, html=True, time_left=lambda: ends - self._clock()
            )
        except TelegramMessageNotModified:
            pass  # it says that already: an earlier attempt (the client's, a record's) landed
        except TelegramApiError as exc:
            log.info("approval_message_not_edited", kind=exc.kind)
            if isinstance(exc, TelegramRetryAfter):  # the chat's limit: its progress waits too
                self._holds.hold(self._chat_id, self._clock() + float(exc.retry_after or 1))
            self._done = not exc.retryable  # deleted, say: nothing to do
            return self._done
        self._done = True
        return True

    def cleanup(self, *, time_left_s: float) -> None:
        """Edit again, once, if the first try was refused, ending within ``time_left_s``."""
        if self._done:
            return
        self._done = True
        ends = self._clock() + time_left_s
        edit = functools.partial(
            self._bot.edit_message_text, self._chat_id, self._message_id, self._html, html=True
        )
        left = cleanup_call(
            edit, chat_id=self._chat_id, holds=self._holds, ends=ends, clock=self._clock, sleep=self._sleep
        )
        if left is not None:
            self._left_behind(left, ends)

    def _left_behind(self, kind: str, ends: float) -> None:
        # A press on its buttons still says what was decided (the producer reads the store).
        log.warning("approval_buttons_left", kind=kind, time_left_s=round(max(ends - self._clock(), 0.0), 1))
