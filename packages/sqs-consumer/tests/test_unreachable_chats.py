"""A chat the bot may no longer post in (the user blocked it or deleted their account, removed
it from the group or deleted the group, closed the topic, upgraded the group) is the users'
doing: the consumer logs it and acknowledges the record. Nothing reaches the dead-letter queue,
whose alarm is the operator's. Real queues and table (moto), a Bot API server on 127.0.0.1
answering Telegram's refusals, a runtime stand-in."""

from __future__ import annotations

import time
from typing import Any

import pytest
from agentbot_testing.telegram_support import answered, failed, queue_inbound
from local_stack import LocalTelegram, TelegramFault, sqs_lambda_event
from session_core import (
    BudgetCaps,
    BudgetExceeded,
    BudgetLedger,
    ChatBacklog,
    LiveTurns,
    SessionKey,
    TurnRequest,
    TurnResult,
)
from sqs_consumer import Consumer, ConsumerTiming
from structlog.testing import capture_logs
from telegram_core import (
    Attachment,
    InboundMessage,
)

CHAT = -100501
KEY = SessionKey(tenant="default", chat_id=CHAT, thread_id=7)


class AnsweringRuntime:
    """The runtime's part: every turn answers at once."""

    def __init__(self) -> None:
        self.turns: list[TurnRequest] = []

    def run_turn(self, request: TurnRequest) -> TurnResult:
        self.turns.append(request)
        return answered(request, "Here it is.")


def backlog(aws: Any, limit: int = 1) -> ChatBacklog:
    return ChatBacklog(dynamodb=aws.dynamodb, table=aws.resources.table, limit=limit)


# The local Bot API answers the first "typing…" in milliseconds, but a loaded test machine may
# take longer than production's wait: these tests are about what its refusal stops, not how
# long a turn waits for it (the wait ends as soon as it is answered).
PATIENT = ConsumerTiming(first_typing_wait_s=10.0, record_retry_backoff_s=0.01, retry_base_delay_s=0)


def consumer(aws: Any, make_consumer: Any, runtime: AnsweringRuntime) -> Consumer:
    return make_consumer(
        runtime, config={"chat_queue_limit": 1}, deps={"backlog": backlog(aws)}, timing=PATIENT
    )


def queue_message(
    aws: Any, update_id: int, *, limit: int = 1, attachments: tuple[Attachment, ...] = ()
) -> None:
    """What the producer does for a mention in the forum topic: count it, queue it."""
    assert backlog(aws, limit).admit(KEY.canonical, now=time.time()) == "queued"
    msg = InboundMessage(
        update_id=update_id,
        session_key=KEY.canonical,
        kind="message",
        chat_id=CHAT,
        chat_type="supergroup",
        message_id=40,
        thread_id=KEY.thread_id,
        user_id=77,
        user_name="alice",
        text="what is new?",
        sent_at=int(time.time()),
        attachments=attachments,
    )
    queue_inbound(aws.sqs, aws.resources.queue_url, msg)


def run_once(aws: Any, worker: Consumer) -> dict[str, Any]:
    """One invocation of the event source: a batch in, the partial batch response out."""
    messages = aws.sqs.receive_message(
        QueueUrl=aws.resources.queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    event = sqs_lambda_event(messages, queue_arn=aws.resources.queue_arn, region=aws.sqs.meta.region_name)
    return dict(worker.handle_batch(event))


def dead_letters(aws: Any) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = aws.sqs.receive_message(
        QueueUrl=aws.resources.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])
    return got


# Telegram's answers when the bot may no longer post where the turn answers: the chat or
# the account was deleted, the bot was removed or lost the right to write, the topic is gone.
SHUT_OUT = [
    (403, "Forbidden: bot was blocked by the user"),
    (403, "Forbidden: bot was kicked from the supergroup chat"),
    (403, "Forbidden: user is deactivated"),
    (403, "Forbidden: bot is not a member of the channel chat"),
    (403, "Forbidden: bot can't initiate conversation with a user"),
    (400, "Bad Request: chat not found"),
    (400, "Bad Request: group chat was deactivated"),
    (400, "Bad Request: TOPIC_CLOSED"),
    (400, "Bad Request: TOPIC_DELETED"),
    (400, "Bad Request: message thread not found"),
    (400, "Bad Request: need administrator rights in the channel chat"),
    (400, "Bad Request: not enough rights to send text messages to the chat"),
    (400, "Bad Request: have no rights to send a message"),
    (400, "Bad Request: have no write access to the chat"),
    (400, "Bad Request: CHAT_WRITE_FORBIDDEN"),
]


@pytest.mark.parametrize(
    ("status", "description"),
    [
        *SHUT_OUT,
        (400, "Bad Request: group chat was upgraded to a supergroup chat"),  # without the new id
    ],
)
def test_a_user_who_shuts_the_bot_out_mid_turn_cannot_fire_the_operators_alarm(
    aws: Any, telegram: LocalTelegram, make_consumer: Any, status: int, description: str
) -> None:
    """Send a message, block the bot (or close the topic) before the answer arrives: nothing
    failed on the bot's side and no redrive can help, so the record is acknowledged and logged
    with the chat and the reason, no dead letter, and the chat's backlog gives its place back."""
    runtime = AnsweringRuntime()
    telegram.inject("sendMessage", TelegramFault(status, description), times=10)
    queue_message(aws, 410)
    with capture_logs() as logs:
        response = run_once(aws, consumer(aws, make_consumer, runtime))
    assert response == {"batchItemFailures": []}
    assert len(runtime.turns) == 1 and dead_letters(aws) == []
    [event] = [e for e in logs if e["event"] == "chat_unreachable"]
    assert event["chat_id"] == CHAT and description in event["reason"], event
    assert not [e for e in logs if e["event"] in {"record_failed", "record_dead_lettered"}]
    # The message left the queue for good: the chat may queue its next one (limit 1).
    assert backlog(aws).admit(KEY.canonical, now=time.time()) == "queued"


@pytest.mark.parametrize(("status", "description"), SHUT_OUT)
def test_a_message_to_a_deleted_or_closed_chat_runs_no_paid_turn(
    aws: Any, telegram: LocalTelegram, make_consumer: Any, status: int, description: str
) -> None:
    """The group was deleted (or the user's account, the topic; the bot lost the right to
    write) while the message waited: Telegram refuses its first "typing…". No turn runs for
    an answer nobody can get, and the record is acknowledged with the reason logged, never
    dead-lettered (which would fire the operator's alarm)."""
    runtime = AnsweringRuntime()
    telegram.inject("sendChatAction", TelegramFault(status, description), times=100)
    queue_message(aws, 415)
    with capture_logs() as logs:
        response = run_once(aws, consumer(aws, make_consumer, runtime))
    assert response == {"batchItemFailures": []}
    assert runtime.turns == [] and dead_letters(aws) == []
    [event] = [e for e in logs if e["event"] == "chat_unreachable"]
    assert event["chat_id"] == CHAT and description in event["reason"], event
    assert backlog(aws).admit(KEY.canonical, now=time.time()) == "queued"


def test_messages_queued_before_the_bot_was_removed_are_not_paid_for(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """Three members wrote, then an admin removed the bot while the first turn ran: Telegram
    refuses even the "typing…" of the messages still queued. Their answers could reach nobody,
    so no turn runs for them (each would be a paid model run), no dead letter, and each gives
    its place in the chat's backlog back, and what its turn held of the sender's budget."""
    runtime = AnsweringRuntime()
    kicked = TelegramFault(403, "Forbidden: bot was kicked from the supergroup chat")
    for method in ("sendChatAction", "sendMessage"):
        telegram.inject(method, kicked, times=100)
    caps = BudgetCaps(user_daily_usd=0.05, turn_usd=0.02)
    budgets = BudgetLedger(dynamodb=aws.dynamodb, table=aws.resources.table, caps=caps, tenant="default")
    worker = make_consumer(
        runtime,
        config={"chat_queue_limit": 3},
        deps={"backlog": backlog(aws, 3), "budgets": budgets},
        timing=PATIENT,
    )
    for update_id in (420, 421, 422):
        queue_message(aws, update_id, limit=3)
    with capture_logs() as logs:
        response = run_once(aws, worker)
    assert response == {"batchItemFailures": []}
    assert runtime.turns == [] and dead_letters(aws) == []
    shut_out = [e for e in logs if e["event"] == "chat_unreachable"]
    assert len(shut_out) == 3 and all("kicked" in e["reason"] for e in shut_out), shut_out
    assert backlog(aws).admit(KEY.canonical, now=time.time()) == "queued"
    # Alice may still talk to the bot elsewhere: three turns' holds would have used up her cap.
    assert not isinstance(budgets.hold(chat_id=-100999, user_id=77), BudgetExceeded)


def test_messages_queued_before_their_group_was_upgraded_are_answered_in_the_supergroup(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """The group became a supergroup while its message waited: Telegram refuses the old
    group's "typing…" naming the supergroup, which is no shut-out: the turn runs and its
    answer goes to the supergroup, as a turn's answer does when the upgrade comes mid-turn."""
    runtime = AnsweringRuntime()
    supergroup = -1009501
    upgraded = TelegramFault.group_upgraded(supergroup)
    telegram.inject("sendChatAction", upgraded, times=100)
    telegram.inject("sendMessage", upgraded, times=1)
    queue_message(aws, 430)
    response = run_once(aws, consumer(aws, make_consumer, runtime))
    assert response == {"batchItemFailures": []}
    assert len(runtime.turns) == 1 and dead_letters(aws) == []
    [answer] = [c.params for c in telegram.calls("sendMessage") if c.params.get("chat_id") == supergroup]
    assert answer["text"] == "Here it is."


def test_a_refusal_that_comes_while_the_file_is_fetched_still_runs_no_paid_turn(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """Telegram is slow: the first "typing…" is refused (the bot was removed) only after the
    turn stopped waiting for it, while the user's document is still being fetched. That refusal
    still counts before the model runs: no paid turn, no dead letter."""
    runtime = AnsweringRuntime()
    kicked = TelegramFault(403, "Forbidden: bot was kicked from the supergroup chat")
    telegram.inject("sendChatAction", kicked, times=100)
    file_id = telegram.add_file(b"%PDF-1.4 lease", file_path="documents/lease.pdf")

    def slow_telegram(method: str, params: dict[str, Any]) -> None:
        # The refusal of the first "typing…" comes after the turn's 0.1 s wait for it, and
        # before the document (asked for meanwhile) has arrived.
        time.sleep({"sendChatAction": 0.6, "getFile": 1.0}.get(method, 0.0))

    telegram.on_call = slow_telegram
    document = Attachment(kind="document", file_id=file_id, file_name="lease.pdf", file_size=14)
    queue_message(aws, 440, attachments=(document,))
    hasty = ConsumerTiming(first_typing_wait_s=0.1, record_retry_backoff_s=0.01, retry_base_delay_s=0)
    worker = make_consumer(
        runtime, config={"chat_queue_limit": 1}, deps={"backlog": backlog(aws)}, timing=hasty
    )
    with capture_logs() as logs:
        response = run_once(aws, worker)
    assert response == {"batchItemFailures": []}
    assert runtime.turns == [] and dead_letters(aws) == []
    assert [e for e in logs if e["event"] == "chat_unreachable"]


class RuntimeAfterABusyTurn:
    """The runtime's part while another turn (``holder``) still runs in the chat: the first
    invocation is answered "busy"; by the next the holder has ended, and the turn runs up to
    ``run_s``, stopping when a stop is requested for it (as the real runtime polls)."""

    def __init__(self, live: LiveTurns, telegram: LocalTelegram, holder: int, run_s: float) -> None:
        self.live, self.telegram, self.holder, self.run_s = live, telegram, holder, run_s
        self.turns: list[TurnRequest] = []
        self.stopped_after_s: float | None = None

    def run_turn(self, request: TurnRequest) -> TurnResult:
        self.turns.append(request)
        if len(self.turns) == 1:
            # The admin removes the bot while this message waits for the chat's running turn.
            kicked = TelegramFault(403, "Forbidden: bot was kicked from the supergroup chat")
            self.telegram.inject("sendChatAction", kicked, times=100)
            return failed(request, "busy")
        self.live.end(KEY, self.holder)
        self.live.begin(KEY, request.turn_id)
        started = time.monotonic()
        while time.monotonic() - started < self.run_s:
            if self.live.stop_requested(KEY, request.turn_id):
                self.stopped_after_s = time.monotonic() - started
                break
            time.sleep(0.05)
        return answered(request, "Here it is.")


def test_a_turn_that_waited_for_the_chats_running_one_still_stops_when_the_bot_is_removed(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """The bot is removed while a message waits for the chat's running turn (its "typing…"
    refused then, when there is no turn of its own to stop yet): once its turn runs, the next
    refused "typing…" stops it, as Stop would, instead of letting it run to the end."""
    live = LiveTurns(dynamodb=aws.dynamodb, table=aws.resources.table)
    live.begin(KEY, 449)  # an earlier message's turn, still running
    runtime = RuntimeAfterABusyTurn(live, telegram, holder=449, run_s=3.0)
    timing = ConsumerTiming(typing_interval_s=0.2, busy_poll_s=0.5, record_retry_backoff_s=0.01)
    worker = make_consumer(
        runtime,
        config={"chat_queue_limit": 1},
        deps={"backlog": backlog(aws), "live_turns": live},
        timing=timing,
    )
    queue_message(aws, 450)
    response = run_once(aws, worker)
    assert response == {"batchItemFailures": []} and dead_letters(aws) == []
    assert len(runtime.turns) == 2
    assert runtime.stopped_after_s is not None and runtime.stopped_after_s < 1.0


def test_a_refusal_within_the_configured_wait_for_the_first_typing_runs_no_paid_turn(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """The turn waits for the first "typing…" as long as the consumer's timing says (the
    default's 0.3 s would have run the turn before this refusal came, at 0.5 s)."""
    runtime = AnsweringRuntime()
    kicked = TelegramFault(403, "Forbidden: bot was kicked from the supergroup chat")
    telegram.inject("sendChatAction", kicked, times=100)
    telegram.on_call = lambda method, params: time.sleep(0.5 if method == "sendChatAction" else 0.0)
    queue_message(aws, 460)
    response = run_once(aws, consumer(aws, make_consumer, runtime))
    assert response == {"batchItemFailures": []}
    assert runtime.turns == [] and dead_letters(aws) == []
