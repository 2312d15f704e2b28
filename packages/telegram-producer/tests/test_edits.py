"""An edit that adds the bot's @mention to a group message nobody answered starts one turn;
every other edit starts none. Real boto3 on the local AWS, fed API Gateway v2 events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from agentbot_testing import AwsFault, FaultProxy
from agentbot_testing.telegram_support import (
    BOT_USERNAME,
    WEBHOOK_SECRET,
    message,
    receive_all,
    webhook_event,
    with_entities,
)
from botocore.config import Config
from session_core import DynamoTable, LiveTurns, PasteParts, SessionKey
from telegram_core import RateLimiter, UpdateDedup, decode_envelope
from telegram_core._update_dedup import TRACKING_MARGIN_S
from telegram_producer import Producer, ProducerConfig

GROUP = {"chat_id": -100700, "chat_type": "supergroup"}
PRIVATE = {"chat_id": 501, "chat_type": "private"}
TOPIC = {**GROUP, "thread_id": 7}
SENT_AT = 1_796_212_800  # 2026-12-02 12:00:00 UTC


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def proxy(aws: Any) -> Iterator[FaultProxy]:
    """Between the producer and DynamoDB: a test may make it fail requests (as DynamoDB's
    throttling does)."""
    with FaultProxy(aws.endpoint, services=aws.endpoints.services) as started:
        yield started


@pytest.fixture
def dynamodb_calls(proxy: FaultProxy) -> tuple[Any, list[str]]:
    """The producer's DynamoDB client (botocore's standard retries) and the requests it made
    (by name), in order."""
    client = proxy.client("dynamodb", config=Config(retries={"mode": "standard"}))
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    return client, calls


@pytest.fixture
def clock() -> Clock:
    return Clock(SENT_AT + 60)


@pytest.fixture
def with_pastes() -> bool:
    """Whether the producer joins the parts of long pastes (a test parametrizes it to True)."""
    return False


@pytest.fixture
def per_user_limit() -> int | None:
    """Messages a user may send a minute (a test parametrizes it; None: no limit)."""
    return None


@pytest.fixture
def just_upgraded(
    aws: Any,
    monkeypatch: Any,
    dynamodb_calls: tuple[Any, list[str]],
    clock: Clock,
    with_pastes: bool,
    per_user_limit: int | None,
) -> Producer:
    """A producer that has not seen an edit yet (as just after the upgrade that taught it edits)."""
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", f"/agentbot/test-{uuid.uuid4().hex[:8]}/webhook-secret")
    monkeypatch.setenv("BOT_USERNAME", BOT_USERNAME)
    config = ProducerConfig.from_env()
    dynamodb, _ = dynamodb_calls
    limits = None
    if per_user_limit is not None:
        limits = RateLimiter(
            dynamodb=dynamodb, table=config.table, tenant=config.tenant, per_user=per_user_limit
        )
    return Producer(
        config=config,
        secret=WEBHOOK_SECRET,
        sqs=aws.sqs,
        registry=UpdateDedup(DynamoTable(dynamodb=dynamodb, table=config.table, clock=clock)),
        clock=clock,
        pastes=PasteParts(dynamodb=dynamodb, table=config.table, clock=clock) if with_pastes else None,
        rate_limiter=limits,
        stops=LiveTurns(dynamodb=dynamodb, table=config.table, clock=clock),
    )


@pytest.fixture
def producer(
    aws: Any, just_upgraded: Producer, dynamodb_calls: tuple[Any, list[str]], clock: Clock
) -> Producer:
    """A producer that saw its first edit (which starts the tracking) a day before SENT_AT."""
    now, clock.now = clock.now, SENT_AT - 86_400
    first = message(message_id=1, text="hi", date=clock.now - 10, **GROUP)
    post(just_upgraded, 1, edit=edited(first, f"@{BOT_USERNAME} hi"))
    clock.now = now
    queued(aws)  # (nothing, once the producer knows its first edit)
    dynamodb_calls[1].clear()
    return just_upgraded


def live(aws: Any) -> LiveTurns:
    """The sessions' running turns, as the runtime marks them."""
    return LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)


def sent(message_id: int, text: str, **fields: Any) -> dict[str, Any]:
    return message(message_id=message_id, text=text, date=SENT_AT, **{**GROUP, **fields})


def edited(original: dict[str, Any], text: str, *, after_s: int = 30) -> dict[str, Any]:
    """``original`` as its edit brings it: the new text (and its entities), the edit's time."""
    kept = {k: v for k, v in original.items() if k not in ("text", "entities")}
    return with_entities({**kept, "text": text, "edit_date": original["date"] + after_s})


def post(
    producer: Producer, update_id: int, *, sent_now: dict | None = None, edit: dict | None = None
) -> str:
    body = {"update_id": update_id, **({"message": sent_now} if sent_now else {"edited_message": edit})}
    response = producer.handle_event(webhook_event(body))
    assert response["statusCode"] == 200, response
    return str(response["body"])


def queued(aws: Any) -> list[tuple[int, int, str]]:
    """(update id, message id, text) of each message the producer queued since last asked."""
    return [
        (m.update_id, m.message_id, m.text)
        for m in (
            decode_envelope(raw["Body"]).message for raw in receive_all(aws.sqs, aws.resources.queue_url)
        )
    ]


def test_an_edit_that_adds_the_mention_is_answered_once_as_the_message(aws: Any, producer: Producer) -> None:
    forgot = sent(40, "what is the capital of Peru?")
    post(producer, 800, sent_now=forgot)
    assert queued(aws) == []  # not addressed to the bot
    post(producer, 801, edit=edited(forgot, f"@{BOT_USERNAME} what is the capital of Peru?"))
    assert queued(aws) == [(801, 40, "what is the capital of Peru?")]
    post(producer, 802, edit=edited(forgot, f"@{BOT_USERNAME} what is the capital of Peru??", after_s=45))
    post(producer, 801, edit=edited(forgot, f"@{BOT_USERNAME} what is the capital of Peru?"))  # redelivered
    assert queued(aws) == []


def test_an_edit_that_replies_to_the_bot_in_a_topic_is_answered(aws: Any, producer: Producer) -> None:
    bot_said = {
        "message_id": 5,
        "from": {"id": 42, "is_bot": True, "first_name": "Bot", "username": BOT_USERNAME},
    }
    forgot = sent(41, "and in Chile?", thread_id=7)
    post(producer, 810, sent_now=forgot)
    assert queued(aws) == []
    replying = {**edited(forgot, "and in Chile?"), "reply_to_message": bot_said}
    post(producer, 811, edit=replying)
    [raw] = receive_all(aws.sqs, aws.resources.queue_url)
    assert raw["Attributes"]["MessageGroupId"] == "default/-100700/7"
    assert decode_envelope(raw["Body"]).message.message_id == 41


def test_an_edit_of_a_message_already_answered_is_not_a_second_turn(aws: Any, producer: Producer) -> None:
    asked = sent(42, f"@{BOT_USERNAME} waht is 2+2")
    post(producer, 820, sent_now=asked)
    assert [m[0] for m in queued(aws)] == [820]
    post(producer, 821, edit=edited(asked, f"@{BOT_USERNAME} what is 2+2"))
    assert queued(aws) == []


@pytest.mark.parametrize(
    "case",
    ["private chat", "more than an hour later", "still not addressed"],
)
def test_other_edits_start_no_turn(aws: Any, producer: Producer, case: str) -> None:
    if case == "private chat":
        edit = message(message_id=43, text="fixed typo", date=SENT_AT, edit_date=SENT_AT + 5)
    elif case == "more than an hour later":
        edit = edited(sent(44, "hello"), f"@{BOT_USERNAME} hello", after_s=3_601)
    else:
        edit = edited(sent(45, "hello"), "hello there")
    post(producer, 830, edit=edit)
    assert queued(aws) == []


def test_queueing_a_group_message_costs_one_write_more_than_a_private_one(
    aws: Any, producer: Producer, dynamodb_calls: tuple[Any, list[str]]
) -> None:
    """The message is recorded for its edits before it is queued (one UpdateItem), its update
    marked seen after (another): no transaction, whose items cost twice."""
    _, calls = dynamodb_calls
    post(producer, 840, sent_now=sent(46, f"@{BOT_USERNAME} hi"))
    assert calls == ["GetItem", "UpdateItem", "UpdateItem"]
    calls.clear()
    post(producer, 841, sent_now=message(message_id=47, text="hi"))  # private: nothing to record
    assert calls == ["GetItem", "UpdateItem"]


def test_after_the_upgrade_edits_of_messages_sent_before_the_first_edit_start_no_turn(
    aws: Any, just_upgraded: Producer, clock: Clock
) -> None:
    """Messages queued by the version before kept no record of it: an edit of one (a typo fixed
    in a question the bot answered) is no second turn. The first edit the producer sees marks
    when the tracking began; a message sent from then on is answered when its mention is edited in."""
    asked_before = sent(50, f"@{BOT_USERNAME} waht is 2+2")  # queued, answered, unrecorded
    post(just_upgraded, 850, edit=edited(asked_before, f"@{BOT_USERNAME} what is 2+2"))
    other_before = sent(51, f"@{BOT_USERNAME} helo")
    post(just_upgraded, 851, edit=edited(other_before, f"@{BOT_USERNAME} hello", after_s=50))
    assert queued(aws) == []
    # A message of the first minutes after it may have been queued by the version before,
    # still finishing during the deploy, or dated by a clock behind ours: not answered either.
    within = message(message_id=52, text="and 3+3?", date=int(clock.now) + TRACKING_MARGIN_S - 1, **GROUP)
    forgot = message(message_id=53, text="and 4+4?", date=int(clock.now) + TRACKING_MARGIN_S, **GROUP)
    clock.now += TRACKING_MARGIN_S + 10
    post(just_upgraded, 852, sent_now=within)
    post(just_upgraded, 853, sent_now=forgot)
    post(just_upgraded, 854, edit=edited(within, f"@{BOT_USERNAME} and 3+3?"))
    post(just_upgraded, 855, edit=edited(forgot, f"@{BOT_USERNAME} and 4+4?"))
    assert queued(aws) == [(855, 53, "and 4+4?")]


@pytest.mark.parametrize("with_pastes", [True])
def test_an_edit_of_a_part_of_a_paste_answered_with_it_is_not_a_second_turn(
    aws: Any, producer: Producer, clock: Clock
) -> None:
    """A long text the app split: its first part addressed the bot, the rest joined its turn.
    Editing a mention into a later part (or fixing a typo in it) brings no second answer."""
    first = sent(60, f"@{BOT_USERNAME} " + "a" * 4_070)
    post(producer, 860, sent_now=first)
    clock.now += 1
    rest = sent(61, "b" * 4_090)
    assert "answered with its paste" in post(producer, 861, sent_now=rest)
    clock.now += 1
    last = sent(62, "the end")
    assert "answered with its paste" in post(producer, 862, sent_now=last)
    assert [m[0] for m in queued(aws)] == [860]
    post(producer, 863, edit=edited(rest, f"@{BOT_USERNAME} " + "b" * 4_090))
    post(producer, 864, edit=edited(last, f"@{BOT_USERNAME} the end"))
    assert queued(aws) == []


@pytest.mark.parametrize("fixed", ["/stop", f"/stop@{BOT_USERNAME}", f"@{BOT_USERNAME} /stop"])
@pytest.mark.parametrize("chat", [GROUP, PRIVATE])
def test_an_edit_of_a_stop_the_bot_answered_is_not_a_second_answer(
    aws: Any, producer: Producer, fixed: str, chat: dict[str, Any]
) -> None:
    """A /stop is answered by the producer itself, never queued: editing it (a mention added, a
    word fixed) brings no queued "/stop" and no second answer, nor stops the next turn."""
    stopped = sent(70, "/stop", **chat)
    assert "Nothing is running" in post(producer, 870, sent_now=stopped)
    next_turn = SessionKey(tenant="default", chat_id=chat["chat_id"])
    live(aws).begin(next_turn, 872)
    assert "ignored" in post(producer, 871, edit=edited(stopped, fixed + " now"))
    assert queued(aws) == []
    assert not live(aws).stop_requested(next_turn, 872)


@pytest.mark.parametrize("per_user_limit", [1])
def test_an_edit_dropped_by_the_rate_limit_is_answered_when_edited_again(
    aws: Any, producer: Producer, clock: Clock
) -> None:
    """An edit over its sender's limit is not queued ("slow down"): the message stays
    unanswered, so an edit of it once the minute is over is answered."""
    post(producer, 880, sent_now=sent(80, f"@{BOT_USERNAME} hi"))
    forgot = sent(81, "and the weather?")
    post(producer, 881, sent_now=forgot)
    post(producer, 882, edit=edited(forgot, f"@{BOT_USERNAME} and the weather?"))
    assert [m[0] for m in queued(aws)] == [880]
    clock.now += 61
    post(producer, 883, edit=edited(forgot, f"@{BOT_USERNAME} and the weather now?", after_s=70))
    assert queued(aws) == [(883, 81, "and the weather now?")]


def test_an_edit_too_large_for_the_queue_does_not_keep_its_message_from_a_later_edit(
    aws: Any, producer: Producer
) -> None:
    """An edit whose turn would not fit on the queue is dropped: the message stays unanswered,
    so a smaller edit of it is answered."""
    someone = {
        "message_id": 3,
        "from": {"id": 9, "is_bot": False, "first_name": "Ann"},
        "text": "x" * 300_000,
    }
    forgot = sent(82, "what does it say?")
    post(producer, 890, sent_now=forgot)
    too_large = {**edited(forgot, f"@{BOT_USERNAME} what does it say?"), "reply_to_message": someone}
    assert "too large for the queue" in post(producer, 891, edit=too_large)
    post(producer, 892, edit=edited(forgot, f"@{BOT_USERNAME} what does the first line say?", after_s=60))
    assert queued(aws) == [(892, 82, "what does the first line say?")]


@pytest.mark.parametrize(
    ("chat", "typo", "fixed"),
    [
        (PRIVATE, "/stpo", "/stop"),
        (GROUP, f"/stpo@{BOT_USERNAME}", f"/stop@{BOT_USERNAME}"),
        (TOPIC, "please wait", "/stop"),
    ],
    ids=["private", "group", "topic"],
)
def test_a_message_edited_into_a_stop_stops_the_running_turn_once(
    aws: Any, producer: Producer, chat: dict[str, Any], typo: str, fixed: str
) -> None:
    """A user fixes a typo into /stop while a turn runs: the turn stops as for a sent /stop.
    A copy Telegram sends again, or editing it once more, stops nothing more (not the next
    turn), and no edit of it starts a turn."""
    key = SessionKey(tenant="default", chat_id=chat["chat_id"], thread_id=chat.get("thread_id", 0))
    live(aws).begin(key, 900)
    mistyped = sent(90, typo, **chat)
    post(producer, 900, sent_now=mistyped)
    before = queued(aws)
    stopping = post(producer, 901, edit=edited(mistyped, fixed))
    assert "Stopping" in stopping
    assert live(aws).stop_requested(key, 900)
    live(aws).end(key, 900)
    live(aws).begin(key, 902)
    post(producer, 901, edit=edited(mistyped, fixed))  # its 200 was lost
    again = post(producer, 903, edit=edited(mistyped, f"{fixed} now", after_s=60))
    mentioned = post(producer, 904, edit=edited(mistyped, f"@{BOT_USERNAME} what now?", after_s=90))
    assert "ignored" in again and "ignored" in mentioned
    assert not live(aws).stop_requested(key, 902)
    assert queued(aws) == [], before


def test_a_message_edited_into_a_stop_with_nothing_running_is_answered_as_a_sent_one(
    aws: Any, producer: Producer
) -> None:
    """Decided: as a sent /stop, it answers that nothing is running (and starts no turn)."""
    mistyped = sent(91, f"/stpo@{BOT_USERNAME}", **TOPIC)
    post(producer, 910, sent_now=mistyped)
    queued(aws)
    answer = post(producer, 911, edit=edited(mistyped, f"/stop@{BOT_USERNAME}"))
    assert "Nothing is running in this topic" in answer and '"message_thread_id":7' in answer
    assert queued(aws) == []


def _record_throttled(message_id: int) -> AwsFault:
    """DynamoDB throttling the writes of the group message ``message_id``'s record."""
    record = f"message|default|{GROUP['chat_id']}|0|{message_id}".encode()
    return AwsFault(
        "dynamodb:*",
        status=400,
        code="ProvisionedThroughputExceededException",
        when=lambda _, body: record in body,
    )


def test_a_group_message_whose_record_was_throttled_is_not_answered_again_when_edited(
    aws: Any, producer: Producer, proxy: FaultProxy
) -> None:
    """DynamoDB throttles the writes of a message's record (longer than botocore retries) while
    the producer takes it: fixing a typo in it afterwards must not bring a second answer."""
    asked = sent(83, f"@{BOT_USERNAME} waht is 3+3")
    throttled = _record_throttled(83)
    proxy.faults.append(throttled)
    answers = [producer.handle_event(webhook_event({"update_id": 893, "message": asked}))["statusCode"]]
    proxy.faults.remove(throttled)
    while answers[-1] != 200 and len(answers) < 3:  # Telegram sends it again; the throttle is over
        answers.append(
            producer.handle_event(webhook_event({"update_id": 893, "message": asked}))["statusCode"]
        )
    assert proxy.failed, "the record was not written"
    post(producer, 894, edit=edited(asked, f"@{BOT_USERNAME} what is 3+3"))
    assert [m[0] for m in queued(aws)] == [893], answers


@pytest.mark.parametrize("per_user_limit", [2])
def test_a_group_message_answered_by_its_edit_while_its_record_was_throttled_is_not_answered_again(
    aws: Any, producer: Producer, proxy: FaultProxy
) -> None:
    """The message's record is throttled (503), the user fixes a typo before Telegram sends it
    again: the edit is answered, and the copy Telegram sends then is not a second answer."""
    asked = sent(84, f"@{BOT_USERNAME} waht is 4+4")
    throttled = _record_throttled(84)
    proxy.faults.append(throttled)
    first = producer.handle_event(webhook_event({"update_id": 895, "message": asked}))
    proxy.faults.remove(throttled)
    assert first["statusCode"] == 503, first
    post(producer, 896, edit=edited(asked, f"@{BOT_USERNAME} what is 4+4"))
    post(producer, 895, sent_now=asked)  # Telegram sends it again
    assert [m[0] for m in queued(aws)] == [896]
    # One question answered once counts once against its sender's limit (2 a minute): the
    # copy not queued gives its slot back, so their next message is answered.
    post(producer, 897, sent_now=sent(85, f"@{BOT_USERNAME} and 5+5?"))
    assert [m[0] for m in queued(aws)] == [897]
