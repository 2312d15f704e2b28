"""A message whose every try kills the consumer, with the real parts: `sqs_consumer.handler.handle`
as its own awslambdaric process behind the local Lambda runtime, fed by the SQS event source
(moto's receive counts, the queue's redrive policy to the DLQ after 5 receives). Each try is
killed with SIGKILL while its turn runs, as Lambda kills a consumer out of memory or out of
time: no code of it runs after that. The try before last leaves its mark in the table, and
the last try tells the user before it runs the turn once more."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from agentbot_testing.telegram_stack import (
    consumer_event_source,
    consumer_function,
    telegram_stack,
    wait_until,
)
from agentbot_testing.telegram_support import update
from session_core import MAX_RECEIVE_COUNT
from sqs_consumer import LAST_TRY_NOTICE

pytestmark = pytest.mark.slow

CHAT = 733
MESSAGE_ID = 21
PROMPT = "sleep:1 heavy one"


@pytest.fixture
def killer(aws: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The pipeline, and ``stack.kill_tries(n)``: each of the next ``n`` tries of the consumer
    is killed as soon as it shows "typing" (its turn has started); ``stack.receives`` lists
    the receive count of every record the event source handed over."""
    with (
        telegram_stack(aws, tmp_path, monkeypatch) as stack,
        consumer_function(stack) as consumer_lambda,
    ):
        stack.receives = []
        stack.killed_at = []
        left = {"tries": 0}

        def kill_tries(n: int) -> None:
            left["tries"] = n

        def kill_while_typing(method: str, params: dict[str, Any]) -> None:
            if method != "sendChatAction" or not left["tries"]:
                return
            left["tries"] -= 1
            stack.killed_at.append(stack.receives[-1])
            for pid in consumer_lambda.process_ids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

        stack.kill_tries = kill_tries
        stack.telegram.on_call = kill_while_typing
        source = consumer_event_source(
            stack,
            consumer_lambda,
            crash_retry_delay_s=1,  # a killed try's record is back in 1 s, not the heartbeat's 3 min
            on_receive=lambda got: stack.receives.extend(
                int(m["Attributes"]["ApproximateReceiveCount"]) for m in got
            ),
        )
        source.start()
        try:
            yield stack
        finally:
            source.stop()


def dead_lettered(stack: Any) -> int:
    attributes = stack.aws.sqs.get_queue_attributes(
        QueueUrl=stack.aws.resources.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_a_message_that_killed_the_consumer_gets_a_word_before_its_last_try_then_its_answer(killer) -> None:
    killer.kill_tries(MAX_RECEIVE_COUNT - 1)
    killer.post(update(610, chat_id=CHAT, user_id=CHAT, message_id=MESSAGE_ID, text=PROMPT))
    assert wait_until(lambda: len(killer.replies(CHAT)) >= 2, timeout_s=90)
    assert killer.killed_at == [1, 2, 3, 4]
    notice, answer = killer.replies(CHAT)
    assert notice["text"] == LAST_TRY_NOTICE
    assert notice["reply_to_message"]["message_id"] == MESSAGE_ID
    assert answer["text"] == f"Answer to: {PROMPT}"
    assert killer.receives == [1, 2, 3, 4, 5]
    assert dead_lettered(killer) == 0


def test_a_message_that_kills_the_last_try_too_is_dead_lettered_and_the_user_was_told(killer) -> None:
    killer.kill_tries(MAX_RECEIVE_COUNT)
    killer.post(update(611, chat_id=CHAT, user_id=CHAT, message_id=MESSAGE_ID, text=PROMPT))
    assert wait_until(lambda: dead_lettered(killer) == 1, timeout_s=90), killer.receives
    assert killer.killed_at == [1, 2, 3, 4, 5]
    assert [m["text"] for m in killer.replies(CHAT)] == [LAST_TRY_NOTICE]


def test_a_message_killed_on_earlier_tries_only_gets_its_answer_and_no_word(killer) -> None:
    """Killed on its first three tries, answered on the fourth: nothing was marked, nothing said."""
    killer.kill_tries(MAX_RECEIVE_COUNT - 2)
    killer.post(update(612, chat_id=CHAT, user_id=CHAT, message_id=MESSAGE_ID, text=PROMPT))
    assert wait_until(lambda: len(killer.replies(CHAT)) >= 1, timeout_s=90)
    assert killer.killed_at == [1, 2, 3] and killer.receives == [1, 2, 3, 4]
    assert [m["text"] for m in killer.replies(CHAT)] == [f"Answer to: {PROMPT}"]
