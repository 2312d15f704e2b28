"""The "typing…" indicator, kept alive in a background thread while a turn runs."""

from __future__ import annotations

import threading
from collections.abc import Callable

from session_core import get_logger
from telegram_core import BotApi, TelegramApiError, TelegramChatMigrated

from ._background import RepeatingStep, StopsOnExit
from ._errors import ChatShutOutError

log = get_logger(__name__)

TYPING_REFRESH_S = 4.0  # Telegram shows the action for at most 5 s
# How long a turn waits for the first "typing…" to say whether the bot may post in the chat:
# about one Bot API round trip, mostly spent while the turn is made ready anyway.
FIRST_TYPING_WAIT_S = 0.3


class TypingIndicator(StopsOnExit):
    """``with TypingIndicator(bot, chat_id) as typing:`` sends "typing" at once and every
    ``interval_s`` until ``typing.stop()`` or the block's end. Failures are logged, never
    raised in its thread; ``raise_if_shut_out()`` raises Telegram's refusal to post in the
    chat (the bot was blocked or removed, the topic closed), and ``on_shut_out`` is called
    each time a refresh meets it (to stop the turn running meanwhile)."""

    def __init__(
        self,
        bot: BotApi,
        chat_id: int,
        *,
        thread_id: int = 0,
        interval_s: float = TYPING_REFRESH_S,
        first_answer_wait_s: float = FIRST_TYPING_WAIT_S,
        on_shut_out: Callable[[], None] | None = None,
    ) -> None:
        self._bot = bot
        self._first_answer_wait_s = first_answer_wait_s
        self._on_shut_out = on_shut_out
        self._chat_id = chat_id
        self._thread_id = thread_id
        self._first_answered = threading.Event()
        self._shut_out: ChatShutOutError | None = None
        self._refreshes = RepeatingStep(
            self._send_typing,
            interval_s=interval_s,
            name="typing",
            failure_event="typing_failed",
            at_once=True,
            join_timeout_s=2,
        )

    def __enter__(self) -> TypingIndicator:
        self._refreshes.start()
        return self

    def stop(self) -> None:
        """End the refreshes and wait for one in flight: a "typing" that lands after the
        answer would show the chat as typing for 5 s more."""
        self._refreshes.stop()

    def raise_if_shut_out(self, wait_s: float | None = None) -> None:
        """Raise ChatShutOutError when Telegram refused a "typing…" because the bot may no
        longer post in the chat: a turn run now would be paid for an answer nobody can get.
        Waits up to ``wait_s`` (default: ``first_answer_wait_s``) for the first one's answer;
        a slow Telegram delays no turn more."""
        self._first_answered.wait(self._first_answer_wait_s if wait_s is None else wait_s)
        if self._shut_out is not None:
            raise self._shut_out

    def _send_typing(self) -> None:
        try:
            self._bot.send_typing(self._chat_id, thread_id=self._thread_id)
        except TelegramApiError as exc:
            log.info("typing_failed", kind=exc.kind)
            if _shuts_out(exc):
                self._shut_out = self._shut_out or ChatShutOutError(exc)
                # At each refusal: one may come before the turn runs (it waits for the chat's
                # running turn), when its stop finds nothing to stop.
                if self._on_shut_out is not None:
                    self._on_shut_out()
        finally:
            self._first_answered.set()


def _shuts_out(exc: TelegramApiError) -> bool:
    """Whether the bot may no longer post where the turn answers. A group upgraded to a
    supergroup Telegram names is not shut out: the answer follows it there (see _delivery)."""
    if isinstance(exc, TelegramChatMigrated) and exc.migrate_to_chat_id is not None:
        return False
    return exc.chat_unreachable
