"""The "typing…" indicator, kept alive in a background thread while a turn runs."""

from __future__ import annotations

from session_core import get_logger
from telegram_core import BotApi, TelegramApiError

from ._background import RepeatingStep, StopsOnExit

log = get_logger(__name__)

TYPING_REFRESH_S = 4.0  # Telegram shows the action for at most 5 s


class TypingIndicator(StopsOnExit):
    """``with TypingIndicator(bot, chat_id) as typing:`` sends "typing" at once and every
    ``interval_s`` until ``typing.stop()`` or the block's end. Failures are logged, never
    raised."""

    def __init__(
        self, bot: BotApi, chat_id: int, *, thread_id: int = 0, interval_s: float = TYPING_REFRESH_S
    ) -> None:
        self._bot = bot
        self._chat_id = chat_id
        self._thread_id = thread_id
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

    def _send_typing(self) -> None:
        try:
            self._bot.send_typing(self._chat_id, thread_id=self._thread_id)
        except TelegramApiError as exc:
            log.info("typing_failed", kind=exc.kind)
