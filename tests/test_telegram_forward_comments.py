"""A comment typed in Telegram's forward dialog ("summarize these") is asked about the
messages forwarded with it: one turn, one answer, replying to the comment.

Telegram delivers the comment first, as an ordinary text message, then each forwarded message
as a message of its own (same sender, same second, later message ids). Before, the comment was
a turn of its own ("summarize what?") and the forwards a second one: two paid turns, and the
first answer made no sense.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agentbot_testing import AwsFault, FaultProxy
from agentbot_testing.telegram_support import BOT_USERNAME, update, webhook_event
from botocore.config import Config
from local_stack import TelegramFault
from telegram_producer import handler as producer_handler

CHAT = 501
GROUP = -100777
BOB = {"id": 42, "is_bot": False, "first_name": "Bob", "username": "bob"}
TOGETHER = "[Forwarded from @bob]\n\npoint 0\n\npoint 1\n\npoint 2"


def _post(stack: Any, update_id: int, **fields: Any) -> str:
    """Post one message as Telegram does; the producer's outcome."""
    response = stack.producer.handle_event(webhook_event(update(update_id, message_id=update_id, **fields)))
    assert response["statusCode"] == 200, response
    return str(json.loads(response["body"])["outcome"])


def _comment_and_forwards(
    stack: Any, first: int, *, sent: int, comment: str = "summarize these", forwards: int = 3, **fields: Any
) -> list[str]:
    """The comment, then ``forwards`` messages forwarded with it, as Telegram delivers them."""
    outcomes = [_post(stack, first, text=comment, date=sent, **fields)]
    for i in range(forwards):
        origin = {"type": "user", "sender_user": BOB, "date": 1_700_000_000 + i}
        outcomes.append(
            _post(stack, first + 1 + i, text=f"point {i}", date=sent, forward_origin=origin, **fields)
        )
    return outcomes


def _forwards(stack: Any, first: int, *, sent: int, forwards: int = 3) -> None:
    """``forwards`` messages forwarded together, dated ``sent``."""
    origin = {"type": "user", "sender_user": BOB, "date": 1_700_000_000}
    for i in range(forwards):
        _post(stack, first + i, text=f"point {i}", date=sent, forward_origin=origin)


def _answers(stack: Any, chat_id: int = CHAT) -> list[dict[str, Any]]:
    return [m for m in stack.replies(chat_id) if m["text"].startswith("Answer to:")]


@contextmanager
def _first_invoke_throttled(stack: Any, monkeypatch: Any) -> Iterator[FaultProxy]:
    """The consumers built inside find the runtime's first invoke throttled (as Lambda
    refuses it past its concurrency), the next ones reach it."""
    throttled = AwsFault(
        "lambda:Invoke", times=1, status=429, code="TooManyRequestsException", message="Rate exceeded"
    )
    with FaultProxy(stack.runtime.endpoint, [throttled]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", proxy.endpoint)
        yield proxy


def test_a_comment_and_the_messages_forwarded_with_it_are_one_turn_and_one_answer(stack) -> None:
    _comment_and_forwards(stack, 2000, sent=int(time.time()))
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert run["prompt"] == f"summarize these\n\n{TOGETHER}"
    [answer] = _answers(stack)
    assert answer["reply_to_message"]["message_id"] == 2000  # the comment's


def test_a_text_that_no_forward_follows_is_answered_on_its_own(stack) -> None:
    _post(stack, 2010, text="what is the capital of Peru?")
    waits: list[float] = []

    def recorded_sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    stack.drain(stack.consumer(sleep=recorded_sleep))

    [run] = stack.runs()
    assert run["prompt"] == "what is the capital of Peru?"
    assert len(_answers(stack)) == 1
    # A short wait for forwards, not the album's 4 s. The waits the consumer chose, not the
    # wall clock: on a loaded machine the runtime's cold start alone took over 3 s.
    assert sum(waits) < 1, waits


def test_forwards_that_come_much_later_are_not_the_texts_comment(stack) -> None:
    sent = int(time.time())
    _post(stack, 2020, text="summarize these", date=sent - 30)
    _comment_and_forwards(stack, 2021, sent=sent, forwards=3, comment="and these?")
    stack.drain(stack.consumer())

    assert [run["prompt"] for run in stack.runs()] == [
        "summarize these",
        f"and these?\n\n{TOGETHER}",
    ]


def test_forwards_of_another_member_are_not_a_members_comment(stack, monkeypatch) -> None:
    monkeypatch.setenv("GROUP_REPLY_MODE", "always")
    stack.producer = producer_handler.build_producer()  # with the setting
    group = {"chat_id": GROUP, "chat_type": "supergroup"}
    sent = int(time.time())
    _post(stack, 2030, text="summarize these", date=sent, user_id=7, **group)
    origin = {"type": "user", "sender_user": BOB, "date": 1_700_000_000}
    _post(stack, 2031, text="point 0", date=sent, forward_origin=origin, user_id=8, **group)
    stack.drain(stack.consumer())

    comment, forward = (run["prompt"] for run in stack.runs())
    assert comment.endswith("summarize these") and "point 0" not in comment
    assert forward.endswith("point 0") and "summarize these" not in forward


def test_forwards_without_a_comment_are_still_one_turn(stack) -> None:
    sent = int(time.time())
    origin = {"type": "user", "sender_user": BOB, "date": 1_700_000_000}
    for i in range(3):
        _post(stack, 2040 + i, text=f"point {i}", date=sent, forward_origin=origin)
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert run["prompt"] == TOGETHER


def test_a_comment_whose_answer_failed_to_send_is_answered_once_with_its_forwards(stack) -> None:
    """The comment's record comes back (its answer could not be sent): its turn is the same,
    and the forwards' own record answers nothing."""
    stack.telegram.inject("sendMessage", TelegramFault.server_error(), times=8)
    _comment_and_forwards(stack, 2050, sent=int(time.time()))
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert run["prompt"] == f"summarize these\n\n{TOGETHER}"
    assert len(_answers(stack)) == 1


def test_the_forwards_record_handed_over_again_answers_nothing(stack) -> None:
    _comment_and_forwards(stack, 2060, sent=int(time.time()))
    consumer = stack.consumer()
    [comment] = stack.receive(1)
    stack.hand_over(consumer, [comment])
    [forwards] = stack.receive(1)
    stack.hand_over(consumer, [forwards])
    stack.hand_over(consumer, [forwards])  # SQS delivers a record more than once at times

    [run] = stack.runs()
    assert run["prompt"] == f"summarize these\n\n{TOGETHER}"
    assert len(_answers(stack)) == 1


def test_a_comment_or_forward_telegram_sends_again_changes_nothing(stack) -> None:
    sent = int(time.time())
    _comment_and_forwards(stack, 2070, sent=sent)
    stack.drain(stack.consumer())
    origin = {"type": "user", "sender_user": BOB, "date": 1_700_000_001}
    again = [
        _post(stack, 2070, text="summarize these", date=sent),
        _post(stack, 2072, text="point 1", date=sent, forward_origin=origin),
    ]
    stack.drain(stack.consumer())

    assert again == ["duplicate", "album part: answered with its album"]
    assert len(stack.runs()) == 1 and len(_answers(stack)) == 1


def test_a_command_or_a_reply_is_no_comment(stack) -> None:
    sent = int(time.time())
    _comment_and_forwards(stack, 2080, sent=sent, comment="/status")
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert run["prompt"] == TOGETHER


def test_in_a_group_a_comment_that_addresses_the_bot_carries_its_forwards(stack) -> None:
    group = {"chat_id": GROUP, "chat_type": "supergroup", "user_id": 7}
    comment = f"@{BOT_USERNAME} summarize these"
    _comment_and_forwards(stack, 2090, sent=int(time.time()), comment=comment, **group)
    stack.drain(stack.consumer())

    [run] = stack.runs()
    assert run["prompt"].endswith(f"summarize these\n\n{TOGETHER}")
    assert len(_answers(stack, GROUP)) == 1


def test_in_a_group_forwards_without_a_comment_that_addresses_the_bot_start_no_turn(stack) -> None:
    group = {"chat_id": GROUP, "chat_type": "supergroup", "user_id": 7}
    _comment_and_forwards(stack, 2100, sent=int(time.time()), comment="look at these, folks", **group)
    stack.drain(stack.consumer())

    assert stack.runs() == []


def test_a_comment_answered_alone_stays_alone_when_its_record_comes_back(stack) -> None:
    """Its first try found no forwards (they came late) and ran its turn, whose answer could
    not be sent: the record's next try gives that answer, and the forwards get their own, not
    taken by a turn that was already answered without them."""
    sent = int(time.time())
    stack.telegram.inject("sendMessage", TelegramFault.server_error(), times=8)
    _post(stack, 2110, text="summarize these", date=sent)
    consumer = stack.consumer()
    [comment] = stack.receive(1)
    stack.hand_over(consumer, [comment])
    stack.telegram.clear_faults()
    origin = {"type": "user", "sender_user": BOB, "date": 1_700_000_000}
    for i in range(3):
        _post(stack, 2111 + i, text=f"point {i}", date=sent, forward_origin=origin)
    stack.drain(consumer)

    assert [run["prompt"] for run in stack.runs()] == ["summarize these", TOGETHER]
    assert len(_answers(stack)) == 2


def test_a_comment_whose_first_try_failed_before_taking_its_forwards_is_answered_with_them(stack) -> None:
    """The first try's look for the forwards failed (DynamoDB): it decided nothing, so the
    retry takes them as a first try would. Before, it answered the comment alone ("summarize
    what?") and the forwards' own record paid for a second turn."""
    look_fails = AwsFault("dynamodb:BatchGetItem", times=1, when=lambda _, body: b"album|" in body)
    with FaultProxy(stack.aws.endpoint, [look_fails]) as proxy:
        # botocore's own retries off: the record's retry is what is tested
        dynamodb = proxy.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))
        _comment_and_forwards(stack, 2120, sent=int(time.time()))
        stack.drain(stack.consumer(dynamodb=dynamodb))

    assert proxy.failed == ["dynamodb:BatchGetItem"]
    [run] = stack.runs()
    assert run["prompt"] == f"summarize these\n\n{TOGETHER}"
    [answer] = _answers(stack)
    assert answer["reply_to_message"]["message_id"] == 2120  # the comment's


def test_a_comment_that_took_its_forwards_and_then_failed_takes_them_again(stack, monkeypatch) -> None:
    with _first_invoke_throttled(stack, monkeypatch) as proxy:
        _comment_and_forwards(stack, 2130, sent=int(time.time()))
        stack.drain(stack.consumer())

    assert proxy.failed == ["lambda:Invoke"]
    [run] = stack.runs()
    assert run["prompt"] == f"summarize these\n\n{TOGETHER}"
    assert len(_answers(stack)) == 1


def test_a_comment_that_went_on_alone_and_then_failed_stays_alone(stack, monkeypatch) -> None:
    """Its first try found no forwards (they came late) and invoked the runtime with the
    comment alone, which failed: the retry's turn is that same one (it may have run), and the
    late forwards get their own."""
    sent = int(time.time())
    with _first_invoke_throttled(stack, monkeypatch) as proxy:
        _post(stack, 2140, text="summarize these", date=sent)
        consumer = stack.consumer()
        [comment] = stack.receive(1)
        stack.hand_over(consumer, [comment])
        _forwards(stack, 2141, sent=sent)
        stack.drain(consumer)

    assert proxy.failed == ["lambda:Invoke"]
    assert [run["prompt"] for run in stack.runs()] == ["summarize these", TOGETHER]
    assert len(_answers(stack)) == 2
