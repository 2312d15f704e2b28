"""Rate limits in the producer: a flood never reaches the queue, the sender is told once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from agentbot_testing import AwsFault, FaultProxy
from agentbot_testing.telegram_support import WEBHOOK_SECRET, receive_all, update, webhook_event
from session_core import DynamoTable
from telegram_core import UpdateDedup, decode_envelope
from telegram_producer import RATE_LIMITED_METRIC, Producer, ProducerConfig, RateLimiter

START = 1_796_212_800.0  # 2026-12-02 12:00:00 UTC, the start of a minute


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def proxy(aws: Any) -> Iterator[FaultProxy]:
    """Between a producer and the local AWS: a test may make it fail requests (an SQS outage,
    DynamoDB's throttling)."""
    with FaultProxy(aws.endpoint, services=aws.endpoints.services) as started:
        yield started


@pytest.fixture
def make_producer(aws, monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", f"/agentbot/test-{uuid.uuid4().hex[:8]}/webhook-secret")
    monkeypatch.setenv("GROUP_REPLY_MODE", "always")

    def make(clock: Clock, *, per_user: int, per_chat: int, via: FaultProxy | None = None) -> Producer:
        """``via``: the proxy the queue and the update registry are reached through."""
        config = ProducerConfig.from_env()
        return Producer(
            config=config,
            secret=WEBHOOK_SECRET,
            sqs=via.client("sqs") if via else aws.sqs,
            registry=UpdateDedup(
                DynamoTable(dynamodb=via.client("dynamodb") if via else aws.dynamodb, table=config.table)
            ),
            clock=clock,
            rate_limiter=RateLimiter(
                dynamodb=aws.dynamodb,
                table=config.table,
                tenant=config.tenant,
                per_user=per_user,
                per_chat=per_chat,
            ),
        )

    return make


def test_a_flood_of_100_messages_queues_20_and_says_slow_down_once(aws, make_producer, capsys) -> None:
    clock = Clock(START)
    producer = make_producer(clock, per_user=20, per_chat=0)
    responses = []
    for i in range(100):
        clock.now = START + i * 0.01  # 100 messages in one second
        responses.append(producer.handle_event(webhook_event(update(9000 + i, chat_id=501, text=f"m{i}"))))

    assert all(r["statusCode"] == 200 for r in responses)  # Telegram must not redeliver any
    queued = [decode_envelope(m["Body"]).message.text for m in receive_all(aws.sqs, aws.resources.queue_url)]
    assert sorted(queued, key=lambda t: int(t[1:])) == [f"m{i}" for i in range(20)]
    # One "slow down", sent as the webhook's reply (a Bot API call in the response body).
    replies = [json.loads(r["body"]) for r in responses[20:]]
    notices = [r for r in replies if r.get("method") == "sendMessage"]
    assert len(notices) == 1 and notices[0]["chat_id"] == 501
    assert "at most 20 a minute" in notices[0]["text"] and "slow down" in notices[0]["text"]
    assert replies[0] == notices[0]  # the first message over the limit gets it
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert sum(m[RATE_LIMITED_METRIC] for m in metrics) == 80

    clock.now = START + 4  # the bucket refills one message every 3 s
    ok = producer.handle_event(webhook_event(update(9100, chat_id=501, text="calm again")))
    assert json.loads(ok["body"])["outcome"] == "enqueued"
    again = producer.handle_event(webhook_event(update(9101, chat_id=501, text="too soon")))
    assert json.loads(again["body"]) == {"ok": True, "outcome": "rate limited (user)"}  # no second notice


@pytest.mark.parametrize("per_minute", [7, 13])
def test_a_full_bucket_takes_exactly_the_limit_even_when_it_does_not_divide_a_minute(
    aws, make_producer, per_minute
) -> None:
    clock = Clock(START)
    producer = make_producer(clock, per_user=per_minute, per_chat=0)
    outcomes = []
    for i in range(30):
        clock.now = START + i * 0.01
        reply = producer.handle_event(webhook_event(update(9200 + i, chat_id=502, text=f"b{i}")))
        outcomes.append(json.loads(reply["body"]).get("outcome"))
    assert outcomes.count("enqueued") == per_minute
    assert outcomes[:per_minute] == ["enqueued"] * per_minute


def test_the_bucket_refills_one_message_per_interval_during_a_long_flood(aws, make_producer) -> None:
    clock = Clock(START)
    producer = make_producer(clock, per_user=20, per_chat=0)
    outcomes = []
    for i in range(300):  # 2 messages a second for 150 s
        clock.now = START + i / 2
        body = json.loads(
            producer.handle_event(webhook_event(update(20_000 + i, chat_id=502, text=f"f{i}")))["body"]
        )
        outcomes.append("notice" if body.get("method") == "sendMessage" else body["outcome"])
    queued = len(receive_all(aws.sqs, aws.resources.queue_url))
    # The 20 of a full bucket, then one per 3 s: the refills at 3.0, 6.0 ... 147.0 s.
    assert queued == outcomes.count("enqueued") == 20 + 49
    # The first refusal (11.5 s: the 23 messages up to 11.0 s used the 20 and the refills at
    # 3.0, 6.0 and 9.0 s) gets a notice, then one a minute, not one per refill.
    notice_times = [i / 2 for i, o in enumerate(outcomes) if o == "notice"]
    assert notice_times == [11.5, 71.5, 131.5]


def test_a_sender_within_the_limit_costs_one_dynamodb_call_per_message(aws, make_producer) -> None:
    clock = Clock(START)
    producer = make_producer(clock, per_user=20, per_chat=0)
    limiter = producer._rate_limiter
    for i in range(30):  # a burst of 10 (the bucket is busy), then one every 4 s (idle)
        clock.now = START + (i * 0.2 if i < 10 else 2 + (i - 9) * 4)
        body = json.loads(
            producer.handle_event(webhook_event(update(30_000 + i, chat_id=503, text="x")))["body"]
        )
        assert body["outcome"] == "enqueued", i
    # The first message finds no bucket; the container's last look at it guesses the form
    # right for every later one: two calls in all beyond one per message (the turn from busy to idle).
    assert limiter.calls <= 30 + 2
    for i in range(30):  # once the bucket is empty, a refused message costs one call
        clock.now = START + 200 + i * 0.01
        producer.handle_event(webhook_event(update(31_000 + i, chat_id=503, text="y")))
    before = limiter.calls
    for i in range(50):
        clock.now = START + 200.5 + i * 0.01
        producer.handle_event(webhook_event(update(32_000 + i, chat_id=503, text="z")))
    assert limiter.calls - before == 50


def test_a_burst_in_a_group_gets_one_notice_not_a_turn_per_message(aws, make_producer) -> None:
    clock = Clock(START)
    producer = make_producer(clock, per_user=20, per_chat=5)
    bodies = []
    for i in range(12):  # three members, four messages each, within a few seconds
        clock.now = START + i * 0.5
        event = webhook_event(
            update(9200 + i, chat_id=-100500, chat_type="supergroup", user_id=700 + i % 3, text=f"g{i}")
        )
        bodies.append(json.loads(producer.handle_event(event)["body"]))
    assert len(receive_all(aws.sqs, aws.resources.queue_url)) == 5
    notices = [b for b in bodies if b.get("method") == "sendMessage"]
    assert len(notices) == 1 and notices[0]["chat_id"] == -100500
    assert notices[0]["text"].startswith("This chat is sending messages faster than I can answer")
    # A private chat of one of them is not held back by the group's burst.
    clock.now = START + 7
    private = producer.handle_event(webhook_event(update(9300, chat_id=700, user_id=700, text="hi")))
    assert json.loads(private["body"])["outcome"] == "enqueued"


def test_a_steady_sender_within_the_limit_is_never_dropped(aws, make_producer) -> None:
    clock = Clock(START)
    producer = make_producer(clock, per_user=20, per_chat=0)
    for i in range(60):  # 15 a minute for four minutes
        clock.now = START + i * 4
        response = producer.handle_event(webhook_event(update(9400 + i, chat_id=501, text=f"s{i}")))
        assert json.loads(response["body"])["outcome"] == "enqueued", i


def test_in_a_group_the_slow_down_notice_answers_the_member_it_is_for(aws, make_producer) -> None:
    """ "You are sending messages faster…" in a group must say whom it means: it quotes the
    first message it skips, as every answer of the bot quotes the message it answers."""
    clock = Clock(START)
    producer = make_producer(clock, per_user=2, per_chat=0)
    bodies = []
    for i in range(3):
        clock.now = START + i * 0.1
        event = webhook_event(
            update(
                9500 + i, message_id=40 + i, chat_id=-100600, chat_type="supergroup", user_id=701, text="x"
            )
        )
        bodies.append(json.loads(producer.handle_event(event)["body"]))
    notice = bodies[2]
    assert notice["method"] == "sendMessage" and notice["text"].startswith("You are sending")
    assert notice["reply_parameters"] == {"message_id": 42, "allow_sending_without_reply": True}


def test_a_paste_whose_first_part_was_dropped_keeps_no_later_message_of_its_sender(
    aws, make_producer
) -> None:
    """Its turn will never gather the paste: the sender's messages after the limit are
    answered again, not kept for it."""
    from session_core import PasteParts

    clock = Clock(START)
    producer = make_producer(clock, per_user=1, per_chat=0)
    producer._pastes = PasteParts(dynamodb=aws.dynamodb, table=aws.resources.table, clock=clock)

    def post(update_id: int, text: str) -> dict[str, str]:
        response = producer.handle_event(webhook_event(update(update_id, chat_id=501, text=text)))
        return dict(json.loads(response["body"]))

    assert post(9500, "hi")["outcome"] == "enqueued"
    post(9501, "x" * 3600)  # over the limit: dropped, with a notice
    clock.now += 2
    assert post(9502, "the rest")["outcome"] == "rate limited (user)"  # not kept for the paste
    clock.now = START + 61
    assert post(9503, "y" * 3600)["outcome"] == "enqueued"  # starts a paste of its own


def _until_taken(producer: Producer, event: dict[str, Any], proxy: FaultProxy, fault: AwsFault) -> list[Any]:
    """Post ``event`` as Telegram does during an outage: again after each 5xx, three times
    while ``fault`` holds, then once more after it is over. The outcome of each post."""
    outcomes: list[Any] = []
    proxy.faults.append(fault)
    for _ in range(3):
        response = producer.handle_event(event)
        outcomes.append(response["statusCode"])
    proxy.faults.remove(fault)
    outcomes.append(json.loads(producer.handle_event(event)["body"]).get("outcome", "notice"))
    return outcomes


def test_a_message_telegram_sends_again_while_the_queue_is_down_counts_once_against_the_limit(
    aws, make_producer, proxy
) -> None:
    """Each 503 makes Telegram send the same update again: it is still one message, queued once
    the queue is back, not dropped as too fast. The limit still holds for the next one."""
    clock = Clock(START)
    producer = make_producer(clock, per_user=1, per_chat=0, via=proxy)
    queue_down = AwsFault("sqs:SendMessage", status=500, code="InternalError")
    event = webhook_event(update(9600, chat_id=504, text="are you there?"))

    assert _until_taken(producer, event, proxy, queue_down) == [503, 503, 503, "enqueued"]
    clock.now += 1
    again = producer.handle_event(webhook_event(update(9601, chat_id=504, text="hello?")))
    assert json.loads(again["body"]).get("method") == "sendMessage"  # over the limit: one notice
    queued = [decode_envelope(m["Body"]).message.text for m in receive_all(aws.sqs, aws.resources.queue_url)]
    assert queued == ["are you there?"]


def test_a_group_message_whose_record_was_throttled_counts_once_for_its_sender_and_its_chat(
    aws, make_producer, proxy
) -> None:
    clock = Clock(START)
    producer = make_producer(clock, per_user=1, per_chat=1, via=proxy)
    record = b"message|default|-100601|0|50"
    throttled = AwsFault(
        "dynamodb:*",
        status=400,
        code="ProvisionedThroughputExceededException",
        when=lambda _, body: record in body,
    )
    event = webhook_event(
        update(9700, message_id=50, chat_id=-100601, chat_type="supergroup", user_id=702, text="hi all")
    )

    assert _until_taken(producer, event, proxy, throttled) == [503, 503, 503, "enqueued"]
    assert len(receive_all(aws.sqs, aws.resources.queue_url)) == 1


def test_messages_a_busy_group_drops_leave_their_senders_own_limit_untouched(aws, make_producer) -> None:
    """A member whose group messages the chat's limit dropped sent nothing that was answered:
    their own limit (which holds in their private chat too) must not count those messages."""
    clock = Clock(START)
    producer = make_producer(clock, per_user=3, per_chat=3)

    def post(update_id: int, **fields: Any) -> dict[str, Any]:
        return json.loads(producer.handle_event(webhook_event(update(update_id, **fields)))["body"])

    for i in range(3):  # three members take the group's three messages of this minute
        clock.now = START + i * 0.1
        assert post(9800 + i, chat_id=-100602, chat_type="supergroup", user_id=710 + i, text="hi")[
            "outcome"
        ] == ("enqueued")
    for i in range(3):  # a fourth member's messages find the group's limit reached
        clock.now = START + 1 + i * 0.1
        dropped = post(9810 + i, chat_id=-100602, chat_type="supergroup", user_id=713, text=f"q{i}")
        assert dropped.get("outcome", "notice") != "enqueued"

    clock.now = START + 2
    private = post(9820, chat_id=713, user_id=713, text="can you help me here instead?")
    assert private.get("outcome") == "enqueued", private.get("text")
