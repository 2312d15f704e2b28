"""The per-chat burst rule: more than CHAT_QUEUE_LIMIT messages waiting in one chat get one
notice instead of a turn each, through producer → SQS FIFO → consumer → runtime."""

from __future__ import annotations

import json

import pytest
from agentbot_testing.telegram_support import BOT_USERNAME, WEBHOOK_SECRET, update, webhook_event
from session_core import ChatBacklog
from telegram_producer import Producer, ProducerConfig
from telegram_producer import handler as producer_handler

LIMIT = 3


@pytest.fixture
def stack(stack, monkeypatch):
    """The shared Telegram stack (tests/conftest.py) with this file's backlog limit."""
    monkeypatch.setenv("CHAT_QUEUE_LIMIT", str(LIMIT))
    stack.producer = producer_handler.build_producer()
    return stack


def post_burst(stack, chat_id: int, first_update: int, count: int, producer=None) -> list[dict]:
    producer = producer or stack.producer
    bodies = []
    for i in range(count):
        event = webhook_event(update(first_update + i, chat_id=chat_id, text=f"burst {first_update + i}"))
        response = producer.handle_event(event)
        assert response["statusCode"] == 200  # Telegram must not redeliver any of them
        bodies.append(json.loads(response["body"]))
    return bodies


def test_a_burst_beyond_the_limit_gets_one_notice_and_only_the_limit_runs(stack) -> None:
    bodies = post_burst(stack, 601, 40_000, 8)
    assert [b.get("outcome") for b in bodies[:LIMIT]] == ["enqueued"] * LIMIT
    notices = [b for b in bodies if b.get("method") == "sendMessage"]
    assert len(notices) == 1 and bodies[LIMIT] == notices[0] and notices[0]["chat_id"] == 601
    assert notices[0]["text"].startswith(f"I still have {LIMIT} messages of this chat to answer")
    assert [b.get("outcome") for b in bodies[LIMIT + 1 :]] == ["chat backlog full"] * 4
    # Another chat is not held back by this one's backlog.
    assert post_burst(stack, 602, 41_000, 1)[0]["outcome"] == "enqueued"

    stack.drain(stack.consumer())
    prompts = sorted(run["prompt"] for run in stack.runs())
    assert prompts == sorted([f"burst {40_000 + i}" for i in range(LIMIT)] + ["burst 41000"])
    assert len(stack.replies(601)) == LIMIT

    # Drained: the chat has room again, and the next burst gets its own notice.
    bodies = post_burst(stack, 601, 42_000, LIMIT + 2)
    assert [b.get("outcome") for b in bodies[:LIMIT]] == ["enqueued"] * LIMIT
    assert bodies[LIMIT].get("method") == "sendMessage"
    assert bodies[LIMIT + 1] == {"ok": True, "outcome": "chat backlog full"}


def test_a_backlog_limit_of_one_is_told_as_one_message(stack, monkeypatch) -> None:
    monkeypatch.setenv("CHAT_QUEUE_LIMIT", "1")
    bodies = post_burst(stack, 603, 43_000, 2, producer=producer_handler.build_producer())

    assert bodies[1]["text"].startswith("I still have 1 message of this chat to answer.")


def test_a_count_left_by_messages_that_never_reached_the_consumer_heals_itself(aws, stack) -> None:
    class Clock:
        now = 1_796_212_800.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    config = ProducerConfig.from_env()
    producer = Producer(
        config=config,
        secret=WEBHOOK_SECRET,
        sqs=aws.sqs,
        registry=stack.update_dedup(),
        clock=clock,
        backlog=ChatBacklog(dynamodb=aws.dynamodb, table=config.table, limit=LIMIT),
    )
    post_burst(stack, 603, 43_000, LIMIT, producer)
    # The records vanish without the consumer (say the queue's redrive dead-lettered them
    # after consumers crashed): nobody releases their count.
    aws.sqs.purge_queue(QueueUrl=aws.resources.queue_url)
    clock.now += 60
    assert post_burst(stack, 603, 43_100, 1, producer)[0].get("method") == "sendMessage"
    clock.now += 29 * 60  # still within 30 min of the last count: the chat stays full
    assert post_burst(stack, 603, 43_200, 1, producer)[0] == {"ok": True, "outcome": "chat backlog full"}
    clock.now += 31 * 60  # nobody touched the count for 30 min: forgotten
    bodies = post_burst(stack, 603, 43_300, LIMIT + 1, producer)
    assert [b.get("outcome") for b in bodies[:LIMIT]] == ["enqueued"] * LIMIT
    assert bodies[LIMIT].get("method") == "sendMessage"  # a new burst, a new notice


def test_a_message_that_fails_for_good_gives_its_place_back(stack) -> None:
    post_burst(stack, 604, 44_000, LIMIT - 1)
    stack.producer.handle_event(webhook_event(update(44_100, chat_id=604, text="fail:bad_request")))
    assert post_burst(stack, 604, 44_200, 1)[0].get("method") == "sendMessage"  # full
    stack.drain(stack.consumer())
    assert len(stack.dead_letters()) == 1  # the failed one went to the DLQ, not back to the queue
    # All three left the queue for good (two answered, one dead-lettered): room for three again.
    bodies = post_burst(stack, 604, 44_300, LIMIT + 1)
    assert [b.get("outcome") for b in bodies[:LIMIT]] == ["enqueued"] * LIMIT
    assert bodies[LIMIT].get("method") == "sendMessage"


def test_a_groups_move_to_its_supergroup_is_queued_even_when_the_supergroups_backlog_is_full(stack) -> None:
    # Members of the new supergroup flood it before the move's record is taken.
    supergroup = {"chat_id": -1004055, "chat_type": "supergroup"}
    for i in range(LIMIT + 1):
        event = webhook_event(update(43_000 + i, text=f"@agent_test_bot burst {i}", **supergroup))
        stack.producer.handle_event(event)
    moved = webhook_event(update(43_100, text=None, migrate_from_chat_id=-4055, **supergroup))
    response = stack.producer.handle_event(moved)

    assert json.loads(response["body"]) == {"ok": True, "outcome": "enqueued: chat moved"}


def test_a_burst_in_a_forum_topic_is_told_of_that_topic_not_the_chat(stack) -> None:
    """The backlog is the topic's (each topic is its own conversation): the other topics of
    the group still get answers, so "of this chat" would be wrong."""
    topic = {"chat_id": -100603, "chat_type": "supergroup", "thread_id": 9}
    bodies = []
    for i in range(LIMIT + 1):
        event = webhook_event(update(43_000 + i, text=f"@{BOT_USERNAME} busy?", **topic))
        bodies.append(json.loads(stack.producer.handle_event(event)["body"]))
    notice = bodies[LIMIT]
    assert notice["text"].startswith(f"I still have {LIMIT} messages of this topic to answer")
    assert notice["message_thread_id"] == 9
