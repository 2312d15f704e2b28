"""The "typing…" indicator, kept alive in a background thread while a turn runs."""

from __future__ import annotations

import threading
from types import TracebackType

from session_core import get_logger

from ._errors import TelegramApiError
from ._telegram import BotApi

log = get_logger(__name__)

TYPING_REFRESH_S = 4.0  # Telegram shows the action for at most 5 s


class TypingIndicator:
    """``with TypingIndicator(bot, chat_id):`` sends "typing" at once and every
    ``interval_s`` until the block ends. Failures are logged, never raised."""

    def __init__(
        self, bot: BotApi, chat_id: int, *, thread_id: int = 0, interval_s: float = TYPING_REFRESH_S
    ) -> None:
        self._bot = bot
        self._chat_id = chat_id
        self._thread_id = thread_id
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="typing", daemon=True)

    def __enter__(self) -> TypingIndicator:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._bot.send_typing(self._chat_id, thread_id=self._thread_id)
            except TelegramApiError as exc:
                log.info("typing_failed", kind=exc.kind)
            except Exception:  # the indicator must never break a turn
                log.exception("typing_failed")
            self._stop.wait(self._interval_s)
