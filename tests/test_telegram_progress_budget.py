"""[H] Group progress stays inside Telegram's group limit under a burst: several consumers
showing turns in several topics of three busy groups share one outgoing budget per group (a
DynamoDB token bucket), so progress never causes a 429 and never crowds out the answers;
progress that finds the budget spent is dropped, not queued."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Collection
from typing import Any

import httpx
from local_stack import TEST_BOT_TOKEN, LocalTelegram
from session_core import SessionKey, ToolActivity, TurnProgress
from sqs_consumer._live_view import LiveView
from telegram_core import BotApi, RateLimiter

GROUPS = (-1001, -1002, -1003)
TOPICS = (0, 11, 12)  # three consumers per group, one per topic


class ChangingProgress:
    """A live item whose progress changes on every read (a busy turn)."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def expect(self, key: SessionKey, turn_id: int, *, message_ids: Collection[int] = ()) -> bool:
        return True

    def end(self, key: SessionKey, turn_id: int, progress: TurnProgress | None = None) -> None:
        pass

    def progress(self, key: SessionKey, turn_id: int) -> TurnProgress:
        with self._lock:
            seq = next(self._seq)
        activity = ToolActivity(kind="tool", name="Bash", argument=f"step {seq}")
        return TurnProgress(turn_id=turn_id, text=f"Working, part {seq}", activity=activity, seq=seq)


def test_progress_of_busy_groups_never_causes_a_429_and_leaves_room_for_the_answers(aws: Any) -> None:
    source = ChangingProgress()
    with LocalTelegram(group_limit_per_minute=20) as telegram, httpx.Client(timeout=10) as http:
        bot = BotApi(http=http, token=TEST_BOT_TOKEN, base_url=telegram.base_url, max_retry_after_s=0)
        # Each consumer paces itself at 0.1 s here: only the shared budget holds them back.
        views = []
        for group, topic in itertools.product(GROUPS, TOPICS):
            budget = RateLimiter(dynamodb=aws.dynamodb, table=aws.resources.table, tenant="default")
            views.append(
                LiveView(
                    bot=bot,
                    source=source,
                    key=SessionKey(tenant="default", chat_id=group, thread_id=topic),
                    turn_id=100 + topic,
                    chat_id=group,
                    private=False,
                    thread_id=topic,
                    budget=budget,
                    poll_s=0.05,
                    group_per_minute=10,
                )
            )
        for view in views:
            view.__enter__()
        time.sleep(4)
        for view in views:
            view.stop()
        progress_calls = {
            g: len([c for c in telegram.calls() if c.params.get("chat_id") == g]) for g in GROUPS
        }
        # The answers go out after the burst of progress, all of them, first time.
        for group, topic in itertools.product(GROUPS, TOPICS):
            bot.send_message(group, f"answer in topic {topic}", html=False, thread_id=topic)
        for view in views:
            view.cleanup(time_left_s=60)
        assert telegram.group_limited == []  # no 429 at all
    for calls in progress_calls.values():
        assert 3 <= calls <= 10, progress_calls  # each group's budget, shared by its topics
    answers = [m for m in telegram.sent_messages() if m["text"].startswith("answer")]
    assert len(answers) == len(GROUPS) * len(TOPICS)
    assert all(not m.get("reply_markup") for m in telegram.sent_messages())  # progress deleted


def test_progress_yields_to_answers_that_spent_the_groups_budget(aws: Any) -> None:
    source = ChangingProgress()
    with LocalTelegram(group_limit_per_minute=20) as telegram, httpx.Client(timeout=10) as http:
        bot = BotApi(http=http, token=TEST_BOT_TOKEN, base_url=telegram.base_url, max_retry_after_s=0)

        def view(group: int) -> LiveView:
            budget = RateLimiter(dynamodb=aws.dynamodb, table=aws.resources.table, tenant="default")
            return LiveView(
                bot=bot,
                source=source,
                key=SessionKey(tenant="default", chat_id=group, thread_id=0),
                turn_id=7,
                chat_id=group,
                private=False,
                budget=budget,
                poll_s=0.05,
                group_per_minute=10,
                group_interval_s=0.1,
            )

        view(-2001).spend_on_answer(10)  # a burst of answers in one group
        busy, quiet = view(-2001), view(-2002)
        with busy, quiet:
            time.sleep(1.5)
        calls = {
            g: len([c for c in telegram.calls() if c.params.get("chat_id") == g]) for g in (-2001, -2002)
        }
    assert calls[-2001] == 0 and calls[-2002] >= 3, calls
