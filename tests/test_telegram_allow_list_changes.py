"""The operator takes someone off the allow-list while their messages wait in the queue: what
the bot still spends on them. Driven through the producer, the queue, the consumer and the
runtime stub, as in test_telegram_group_people."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agentbot_testing.telegram_support import BOT_USERNAME, update, webhook_event
from telegram_producer import handler as producer_handler

ALICE, BOB = 501, 502


def queued(producer: Any, body: dict[str, Any]) -> None:
    response = producer.handle_event(webhook_event(body))
    assert json.loads(response["body"])["outcome"] == "enqueued", response


def test_messages_queued_by_someone_taken_off_the_allow_list_run_no_turn(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob's messages wait behind a slow turn (or an outage) when the operator removes him and
    redeploys: they were queued while he was allowed, but the model must not be paid to answer
    him now, nor he answered. Alice, still listed, is answered as before."""
    monkeypatch.setenv("ALLOWED_USER_IDS", f"{ALICE},{BOB}")
    producer = producer_handler.build_producer()
    queued(producer, update(900, message_id=900, chat_id=BOB, user_id=BOB, text="summarise this"))
    queued(producer, update(901, message_id=901, chat_id=BOB, user_id=BOB, text="/new"))
    queued(producer, update(902, message_id=902, chat_id=ALICE, user_id=ALICE, text="hello"))
    monkeypatch.setenv("ALLOWED_USER_IDS", str(ALICE))  # the deploy that removes Bob
    stack.drain(stack.consumer())
    assert [run["user_id"] for run in stack.runs()] == [ALICE]
    assert stack.replies(BOB) == []
    assert len(stack.replies(ALICE)) == 1
    assert stack.receive() == []  # acknowledged, not retried or dead-lettered
    assert stack.dead_letters() == []


def test_a_removed_members_dropped_message_gives_its_place_in_the_groups_backlog_back(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a group off the lists, where Alice (listed) and Bob (removed since) talk to the bot:
    Bob's queued message, dropped, no longer counts against the group's CHAT_QUEUE_LIMIT, or
    Alice's next message would be refused as one too many for half an hour."""
    group = {"chat_id": -100400, "chat_type": "supergroup"}
    monkeypatch.setenv("CHAT_QUEUE_LIMIT", "1")
    monkeypatch.setenv("ALLOWED_USER_IDS", f"{ALICE},{BOB}")
    producer = producer_handler.build_producer()
    queued(producer, update(910, message_id=910, user_id=BOB, text=f"@{BOT_USERNAME} hi", **group))
    monkeypatch.setenv("ALLOWED_USER_IDS", str(ALICE))
    producer = producer_handler.build_producer()
    stack.drain(stack.consumer())
    assert stack.runs() == []
    assert stack.replies(group["chat_id"]) == []
    queued(producer, update(911, message_id=911, user_id=ALICE, text=f"@{BOT_USERNAME} hi", **group))
    stack.drain(stack.consumer())
    assert [run["user_id"] for run in stack.runs()] == [ALICE]


def test_a_turn_already_paid_when_its_sender_was_removed_is_counted_and_its_answer_delivered(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob's turn ran and was recorded, but its answer never reached the consumer (the
    connection dropped); the operator removes Bob before the record's retry. The model was
    paid already: the retry replays the recorded answer (no second run), so the cost counts
    against the group's budget and Bob gets what was paid for. Dropped, the paid run counted
    nowhere (its hold lapses after 20 minutes) and its answer was lost."""
    from agentbot_testing import AwsFault, FaultProxy

    group = {"chat_id": -100400, "chat_type": "supergroup"}
    monkeypatch.setenv("BUDGET_CHAT_DAILY_USD", "1")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    monkeypatch.setenv("ALLOWED_USER_IDS", f"{ALICE},{BOB}")
    producer = producer_handler.build_producer()
    queued(producer, update(920, message_id=920, user_id=BOB, text=f"@{BOT_USERNAME} question", **group))
    lost = AwsFault("lambda:Invoke", times=1, forward_first=True)
    with FaultProxy(stack.runtime.endpoint, [lost]) as proxy, monkeypatch.context() as first_try:
        first_try.setenv("AWS_ENDPOINT_URL_LAMBDA", proxy.endpoint)
        stack.hand_over(stack.consumer(), stack.receive())
    assert proxy.failed == ["lambda:Invoke"]
    monkeypatch.setenv("ALLOWED_USER_IDS", str(ALICE))  # the deploy that removes Bob
    producer = producer_handler.build_producer()
    stack.drain(stack.consumer())
    assert [run["update_id"] for run in stack.runs()] == [920]  # one model run, not two
    [answer] = stack.replies(group["chat_id"])
    assert answer["text"].startswith("Answer to:") and answer["text"].endswith("question")

    queued(producer, update(921, message_id=921, user_id=ALICE, text="/cost", **group))
    stack.drain(stack.consumer())
    assert "This chat, today: $0.01 of $1.00" in stack.replies(group["chat_id"])[-1]["text"]


def test_a_turn_already_paid_when_its_sender_was_removed_is_replayed_once_its_dead_letter_is_redriven(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob's turn ran and was recorded, but the runtime's reply was lost on every try, so the
    record went to the dead-letter queue; the operator removes Bob, fixes the cause and runs
    `agentbot dlq redrive`. The redriven record is a later try of one whose turn ran: it replays
    the recorded answer (no second run), as a retry does, instead of being dropped as a
    message never answered (its paid answer lost)."""
    from agentbot_testing import AwsFault, FaultProxy
    from agentbot_testing.telegram_stack import MAX_RECEIVE_COUNT

    from agentbot.ops import redrive_dead_letters

    monkeypatch.setenv("ALLOWED_USER_IDS", f"{ALICE},{BOB}")
    producer = producer_handler.build_producer()
    queued(producer, update(930, message_id=930, chat_id=BOB, user_id=BOB, text="question"))
    lost = AwsFault("lambda:Invoke", times=MAX_RECEIVE_COUNT, forward_first=True)
    with FaultProxy(stack.runtime.endpoint, [lost]) as proxy, monkeypatch.context() as lost_replies:
        lost_replies.setenv("AWS_ENDPOINT_URL_LAMBDA", proxy.endpoint)
        stack.drain(stack.consumer())
    [dead] = stack.dead_letters()
    stack.aws.sqs.change_message_visibility(
        QueueUrl=stack.aws.resources.dlq_url, ReceiptHandle=dead["ReceiptHandle"], VisibilityTimeout=0
    )
    monkeypatch.setenv("ALLOWED_USER_IDS", str(ALICE))  # the deploy that removes Bob
    redrive_dead_letters(
        stack.aws.sqs,
        dlq_url=stack.aws.resources.dlq_url,
        queue_url=stack.aws.resources.queue_url,
        wait_seconds=0,
    )
    stack.drain(stack.consumer())
    assert [run["update_id"] for run in stack.runs()] == [930]  # one model run, not two
    assert any(reply["text"].endswith("question") for reply in stack.replies(BOB))


def test_a_retry_whose_turn_never_ran_is_still_dropped_once_its_sender_was_removed(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exception for a turn that ran is no way around the allow-list: Bob's first try
    fails before the runtime runs anything, the operator removes him, and SQS delivers the
    record again. No answer is recorded for it, so no model is paid and Bob gets nothing."""
    from agentbot_testing import AwsFault, FaultProxy

    monkeypatch.setenv("ALLOWED_USER_IDS", f"{ALICE},{BOB}")
    producer = producer_handler.build_producer()
    queued(producer, update(940, message_id=940, chat_id=BOB, user_id=BOB, text="question"))
    refused = AwsFault("lambda:Invoke", times=1)  # refused before it reached the runtime
    with FaultProxy(stack.runtime.endpoint, [refused]) as proxy, monkeypatch.context() as first_try:
        first_try.setenv("AWS_ENDPOINT_URL_LAMBDA", proxy.endpoint)
        stack.hand_over(stack.consumer(), stack.receive())
    assert proxy.failed == ["lambda:Invoke"]
    monkeypatch.setenv("ALLOWED_USER_IDS", str(ALICE))  # the deploy that removes Bob
    stack.drain(stack.consumer())
    assert stack.runs() == []
    assert stack.replies(BOB) == []
    assert stack.receive() == [] and stack.dead_letters() == []
