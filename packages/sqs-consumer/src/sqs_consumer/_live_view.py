"""[H] A running turn shown live while the consumer waits for the runtime's answer.

The runtime publishes its progress into the session's live item (about once a second); this
polls it and shows it:

- private chats: ``sendMessageDraft`` with the answer so far and the stop control
  (``can_stop``), at most once per ``draft_interval_s`` and again every ``DRAFT_REFRESH_S``
  while it stays the same (Telegram shows a draft for 30 s); the final answer then arrives as
  normal messages (the consumer's delivery, exactly once).
- groups and forum topics (no drafts there): one progress message with an inline Stop button,
  edited at most once per ``group_interval_s`` *and* only with a slot of the group's outgoing
  budget (a DynamoDB token bucket shared by all consumers, ``group_per_minute``), so progress
  stays inside Telegram's 20 messages a minute per group and leaves room for the answers. It
  replies to the request it works on, as the answer does (in a busy group, whose request runs
  and whose a Stop would stop); it is deleted once the answer is out.

Progress is best effort: one attempt per update, a 429 silences it until ``retry_after`` (every
view of that chat in the invocation, given the same ``ChatHolds``), and
any failure is logged and dropped (the deletion of a group's progress message, after the
answer, waits for a send still in flight, is retried and waits out a 429 the invocation has
time for, each call ending within that time). It never delays the answer: ``stop()`` ends it
first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

from session_core import SessionKey, StopOutcome, Stopper, TurnProgress, get_logger
from telegram_core import (
    BotApi,
    TelegramApiError,
    TelegramBadRequest,
    TelegramForbidden,
    TelegramMessageNotFound,
    TelegramRetryAfter,
    stop_callback_data,
)

from ._background import RepeatingStep, StopsOnExit
from ._chat_holds import ChatHolds
from ._cleanup_call import cleanup_call
from ._progress_render import STOP_BUTTON_TEXT, progress_html

log = get_logger(__name__)

POLL_S = 0.5
DRAFT_INTERVAL_S = 1.0
DRAFT_REFRESH_S = 20.0  # Telegram shows a draft for 30 s
# Of Telegram's 20 messages a minute per group, what progress edits may use (answers first).
GROUP_PROGRESS_PER_MINUTE = 10


class ProgressSource(Protocol):
    """The verbs of session_core.LiveTurns the consumer uses (the view; a stop when the
    chat shut the bot out; a stop while a turn's recordings are written down; who stopped a
    group's turn, to name them)."""

    def expect(self, key: SessionKey, turn_id: int, *, message_ids: Collection[int] = ()) -> bool: ...

    def stop_requested(self, key: SessionKey, turn_id: int) -> bool: ...

    def progress(self, key: SessionKey, turn_id: int) -> TurnProgress | None: ...

    def end(self, key: SessionKey, turn_id: int, progress: TurnProgress | None = None) -> None: ...

    def request_stop(
        self, key: SessionKey, *, turn_id: int | None = None, update_id: int | None = None
    ) -> StopOutcome: ...

    def stopped_by(self, key: SessionKey, turn_id: int) -> Stopper | None: ...


class GroupBudget(Protocol):
    """The verb of telegram_core.RateLimiter the view spends (one slot per group message)."""

    def take(self, bucket: str, per_minute: int, *, now: float) -> bool: ...


class LiveView(StopsOnExit):
    """``with LiveView(...) as view:`` shows turn ``turn_id`` of ``chat_id`` until
    ``view.stop()`` or the block's end; ``view.cleanup(...)`` (after the answer went out) removes
    the group's progress message. Without a ``source`` it shows nothing. ``message_ids``: the
    messages the turn answers (a stop kept for one, as it was edited into a /stop, stops the
    turn as it is expected). ``chat_holds``: the 429s it shares with the invocation's other views (None: its
    own only); ``clock`` and ``sleep``: the monotonic time it reads and waits on. Never raises."""

    def __init__(
        self,
        *,
        bot: BotApi,
        source: ProgressSource | None,
        key: SessionKey,
        turn_id: int,
        chat_id: int,
        private: bool,
        thread_id: int = 0,
        reply_to: int | None = None,
        message_ids: Collection[int] = (),
        budget: GroupBudget | None = None,
        chat_holds: ChatHolds | None = None,
        poll_s: float = POLL_S,
        draft_interval_s: float = DRAFT_INTERVAL_S,
        group_per_minute: int = GROUP_PROGRESS_PER_MINUTE,
        group_interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._bot = bot
        self._source = source
        self._key = key
        self._turn_id = turn_id
        self._message_ids = message_ids
        self._chat_id = chat_id
        self._private = private
        self._thread_id = thread_id
        self._reply_to = reply_to
        self._budget = budget
        # A 429 is the chat's: what this view learns, the invocation's other views of it know.
        self._holds = chat_holds or ChatHolds()
        # A group's progress message: one edit per budget slot at most, from this consumer.
        group_pace = 60.0 / max(group_per_minute, 1) if group_interval_s is None else group_interval_s
        self._interval_s = draft_interval_s if private else group_pace
        self._group_per_minute = group_per_minute
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._polls = RepeatingStep(
            self._tick,
            interval_s=poll_s,
            name="live-view",
            failure_event="live_view_failed",
            join_timeout_s=5,
        )
        self._shown_seq = 0
        self._shown_text = ""
        self._last_sent = float("-inf")
        self._disabled = False
        self.progress_message_id: int | None = None
        self.calls = 0  # Bot API calls made (bench/pipeline.py counts them per turn)
        self.first_shown_at: float | None = None  # clock() when text first became visible

    def __enter__(self) -> LiveView:
        if self._source is not None:
            # A stop pressed while the runtime starts must find the turn (it keeps the stop).
            self._quietly(
                lambda source: source.expect(self._key, self._turn_id, message_ids=self._message_ids)
            )
            self._polls.start()
        return self

    def stop(self) -> None:
        """End the updates and wait for one in flight (each is a single attempt)."""
        if self._polls.stopped:
            return
        self._polls.stop()
        if self._source is not None:  # a replayed or refused turn never began: end it here
            self._quietly(lambda source: source.end(self._key, self._turn_id))

    def _quietly(self, call: Callable[[ProgressSource], object]) -> None:
        assert self._source is not None
        try:
            call(self._source)
        except Exception as exc:  # progress must never break a turn
            log.info("live_item_not_written", error=type(exc).__name__)

    def spend_on_answer(self, messages: int) -> None:
        """Take the answer's messages from the group's budget too (best effort, never
        refused): while answers flow in a group, its progress backs off, so progress and
        answers together stay inside the group limit as long as the answers alone do."""
        if self._private or self._budget is None:
            return
        bucket = f"out|chat|{self._chat_id}"
        for _ in range(messages):
            try:
                if not self._budget.take(bucket, self._group_per_minute, now=self._wall_clock()):
                    return  # empty already: progress is held back until it refills
            except Exception as exc:  # the answer matters more than its accounting
                log.info("answer_not_counted", error=type(exc).__name__)
                return

    def cleanup(self, *, time_left_s: float) -> None:
        """Delete the group's progress message (once; the answer replaced it), waiting for
        Telegram when it asks (a 429, this call's or one the chat's other views got) as long as
        the cleanup ends within ``time_left_s``."""
        # The time left is read on the clock before each wait: slow calls spend it as surely
        # as the waits do.
        ends = self._clock() + time_left_s
        # A send still in flight (Telegram slower than stop() waits) gives the view its
        # message only after this ran: waited for, so that message goes too. A draft or an
        # edit in flight brings no message to delete: not waited for (the chat's next record is).
        sending = not self._private and self.progress_message_id is None
        if sending and not self._polls.wait_ended(ends - self._clock()):
            self._left_behind("send_in_flight", ends)
            return
        message_id, self.progress_message_id = self.progress_message_id, None
        if message_id is None:
            return
        params = {"chat_id": self._chat_id, "message_id": message_id}

        # Left behind, it would show a step long done and a Stop that stops nothing, for good:
        # unlike an update (the next one follows), this is retried (``cleanup_call``).
        def delete(**retries: Any) -> object:
            self.calls += 1
            return self._bot.call("deleteMessage", params, **retries)

        left = cleanup_call(
            delete, chat_id=self._chat_id, holds=self._holds, ends=ends, clock=self._clock, sleep=self._sleep
        )
        if left is not None:
            self._left_behind(left, ends)

    def _left_behind(self, kind: str, ends: float) -> None:
        log.warning("progress_message_left", kind=kind, time_left_s=round(max(ends - self._clock(), 0.0), 1))

    # -- the loop (one poll every poll_s; a poll that raises is logged) ------------------------

    def _tick(self) -> None:
        now = self._clock()
        held = now < self._holds.until(self._chat_id)
        if self._disabled or held or now - self._last_sent < self._interval_s:
            return
        assert self._source is not None  # the thread runs only with a source
        progress = self._source.progress(self._key, self._turn_id)
        if progress is None or progress.stopped:
            return
        # A draft is a 30-second preview in Telegram: one unchanged while a tool runs long is
        # shown again before it fades, else the user is left with "typing…" alone.
        refresh = self._private and self._shown_text != "" and now - self._last_sent >= DRAFT_REFRESH_S
        if progress.seq <= self._shown_seq and not refresh:
            return
        text = progress_html(progress)
        if text == self._shown_text and not refresh:  # Telegram refuses an edit that changes nothing
            self._shown_seq = progress.seq
            return
        if not self._private and self._budget is not None:
            bucket = f"out|chat|{self._chat_id}"
            if not self._budget.take(bucket, self._group_per_minute, now=self._wall_clock()):
                return  # the group's budget is spent: skip this update, never queue it
        if self._polls.stopped:
            return
        sent = self._show(text)
        self._last_sent = self._clock()
        if sent:
            self._shown_seq, self._shown_text = progress.seq, text
            if self.first_shown_at is None and progress.text:
                self.first_shown_at = self._last_sent

    def _show(self, text: str) -> bool:
        if self._private:
            params: dict[str, Any] = {
                "chat_id": self._chat_id,
                "draft_id": self._turn_id or 1,  # must be non-zero; the stop control names it
                "text": text,
                "parse_mode": "HTML",
                "can_stop": True,
            }
            if self._thread_id:
                params["message_thread_id"] = self._thread_id
            return self._call("sendMessageDraft", params) is not None
        markup = {
            "inline_keyboard": [
                [{"text": STOP_BUTTON_TEXT, "callback_data": stop_callback_data(self._turn_id)}]
            ]
        }
        if self.progress_message_id is None:
            params = {
                "chat_id": self._chat_id,
                "text": text,
                "parse_mode": "HTML",
                "reply_markup": markup,
                "link_preview_options": {"is_disabled": True},
            }
            if self._thread_id:
                params["message_thread_id"] = self._thread_id
            if self._reply_to is not None:  # a request deleted meanwhile: shown all the same
                params["reply_parameters"] = {
                    "message_id": self._reply_to,
                    "allow_sending_without_reply": True,
                }
            result = self._call("sendMessage", params)
            if isinstance(result, dict) and "message_id" in result:
                self.progress_message_id = int(result["message_id"])
                return True
            return False
        params = {
            "chat_id": self._chat_id,
            "message_id": self.progress_message_id,
            "text": text,
            "parse_mode": "HTML",
            "reply_markup": markup,
            "link_preview_options": {"is_disabled": True},
        }
        return self._call("editMessageText", params) is not None

    def _call(
        self, method: str, params: dict[str, Any], *, attempts: int = 1, max_retry_after_s: float = 0.0
    ) -> Any:
        self.calls += 1
        try:
            return self._bot.call(method, params, attempts=attempts, max_retry_after_s=max_retry_after_s)
        except TelegramApiError as exc:
            if isinstance(exc, TelegramRetryAfter):
                self._holds.hold(self._chat_id, self._clock() + float(exc.retry_after or 1))
            elif method == "sendMessageDraft" and (
                isinstance(exc, TelegramForbidden) or type(exc) is TelegramBadRequest
            ):
                self._disabled = True  # no drafts for this chat (an older Bot API): typing only
            elif isinstance(exc, TelegramMessageNotFound):
                # Someone deleted the progress message: every edit would fail and spend a slot
                # of the group's budget until the turn ends. None again (nor its delete).
                self._disabled, self.progress_message_id = True, None
            log.info("progress_not_shown", method=method, kind=exc.kind)
            return None
