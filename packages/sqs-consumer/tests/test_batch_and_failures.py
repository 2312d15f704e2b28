"""The FIFO batch processor and the failure policy, called directly: no queue, no AWS (a
recording SQS client stands in where the exact calls matter)."""

from __future__ import annotations

from typing import Any

import pytest
from session_core import SessionKey, StorageError
from sqs_consumer import (
    MAX_REQUEUES,
    MODEL_WAIT_MAX_S,
    REQUEUES_ATTRIBUTE,
    AttachmentTooLargeError,
    DeferredError,
    DeliveryFailedError,
    FailurePolicy,
    RecordOutcome,
    SqsRecord,
    TurnFailedError,
    batch_response,
    classify,
    process_fifo_batch,
    retry_delay_s,
)
from telegram_core import TelegramForbidden, TelegramRetryAfter

KEY = SessionKey.parse("default/5/0")


def raw(
    message_id: str, group: str = "g", *, receives: int = 1, requeues: int | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": "{}",
        "attributes": {"MessageGroupId": group, "ApproximateReceiveCount": str(receives)},
    }
    if requeues is not None:
        record["messageAttributes"] = {REQUEUES_ATTRIBUTE: {"stringValue": str(requeues)}}
    return record


def test_a_failure_holds_back_the_rest_of_its_chat_but_not_other_chats() -> None:
    handled: list[str] = []

    def handle(record: SqsRecord) -> RecordOutcome:
        handled.append(record.message_id)
        if record.message_id == "a1":
            return RecordOutcome(done=False, status="retry", retry_delay_s=30)
        if record.message_id == "b2":
            raise RuntimeError("a bug")  # reported, never raised to the batch
        return RecordOutcome(done=True, status="replied")

    event = {"Records": [raw("a1", "A"), raw("b1", "B"), raw("a2", "A"), raw("b2", "B"), raw("c1", "C")]}
    failed = process_fifo_batch(event, handle, retry_delay=lambda record: 7)

    assert sorted(handled) == ["a1", "b1", "b2", "c1"]  # a2 waits for a1
    assert [(record.message_id, delay) for record, delay in failed] == [("a1", 30), ("a2", 7), ("b2", 7)]
    assert batch_response(failed) == {
        "batchItemFailures": [{"itemIdentifier": "a1"}, {"itemIdentifier": "a2"}, {"itemIdentifier": "b2"}]
    }


def test_an_empty_event_fails_nothing() -> None:
    assert process_fifo_batch({}, lambda r: RecordOutcome(done=True, status="replied"), retry_delay=len) == []


@pytest.mark.parametrize(
    ("error", "kind", "retryable", "deferrable", "retry_after"),
    [
        (TurnFailedError("model_error", "try later", retryable=True), "model_error", True, False, None),
        (DeferredError("busy", "held"), "busy", True, True, None),
        (AttachmentTooLargeError("a.bin", 9), "attachment_too_large", False, False, None),
        (
            DeliveryFailedError(1, 0, TelegramRetryAfter("sendMessage", 429, "slow", retry_after=40)),
            "delivery",
            True,
            True,
            40,
        ),
        (
            DeliveryFailedError(1, 0, TelegramForbidden("sendMessage", 403, "blocked")),
            "delivery",
            False,
            False,
            None,
        ),
        (TelegramRetryAfter("getFile", 429, "slow", retry_after=9), "telegram", True, False, 9),
        (TelegramForbidden("getFile", 403, "blocked"), "telegram", False, False, None),
        (StorageError("put", "throttled"), "StorageError", True, False, None),
        (KeyError("x"), "KeyError", True, False, None),
    ],
)
def test_what_each_failure_becomes(
    error: Exception, kind: str, retryable: bool, deferrable: bool, retry_after: float | None
) -> None:
    failure = classify(error)
    assert (failure.kind, failure.retryable, failure.deferrable, failure.retry_after) == (
        kind,
        retryable,
        deferrable,
        retry_after,
    )


def test_only_a_chat_the_bot_was_shut_out_of_is_unreachable() -> None:
    """Blocked or removed: acknowledged and logged, not a dead letter; a 429 or another bad
    request still goes the usual way."""
    blocked = TelegramForbidden("sendMessage", 403, "Forbidden: bot was blocked by the user")
    assert classify(DeliveryFailedError(1, 0, blocked)).chat_unreachable
    assert classify(blocked).chat_unreachable
    slow = TelegramRetryAfter("sendMessage", 429, "slow", retry_after=4)
    assert not classify(DeliveryFailedError(1, 0, slow)).chat_unreachable
    assert not classify(TurnFailedError("model_error", None, retryable=False)).chat_unreachable


def test_only_our_errors_keep_their_text_and_only_a_failed_turn_speaks_to_the_user() -> None:
    assert classify(KeyError("secret user text")).detail == "KeyError"
    turn = classify(TurnFailedError("model_error", "The model is overloaded.", retryable=False))
    assert turn.user_message == "The model is overloaded." and "model_error" in turn.detail


@pytest.mark.parametrize(("receives", "delay"), [(1, 10), (2, 20), (3, 40), (6, 300), (10, 300)])
def test_retries_back_off_to_five_minutes(receives: int, delay: int) -> None:
    assert retry_delay_s(receives) == delay


class RecordingSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.hidden: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> Any:
        self.sent.append(kwargs)
        return {}

    def change_message_visibility(self, **kwargs: Any) -> Any:
        self.hidden.append(kwargs)
        return {}


def policy(sqs: RecordingSqs, inbound: str = "inbound") -> FailurePolicy:
    return FailurePolicy(sqs=sqs, inbound_queue_url=inbound, dead_letter_queue_url="dlq")


def test_telegrams_retry_after_outlasts_the_backoff() -> None:
    record = SqsRecord.from_event(raw("m", receives=1))
    assert policy(RecordingSqs()).retry_delay(record, retry_after=95.5) == 96
    assert policy(RecordingSqs()).retry_delay(record, retry_after=2) == 10


def test_a_models_long_retry_after_puts_the_message_off_at_most_a_quarter_hour() -> None:
    """A model gateway may ask to wait hours: the chat's queue would hold every later message
    (/new and /help included) that long, and the user read "about 720 minutes". Waits past a
    quarter hour are cut to it; the retry may be asked to wait again, within the receives."""
    record = SqsRecord.from_event(raw("m", receives=1))
    for asked, waited in ((120, 120), (43_200, MODEL_WAIT_MAX_S)):
        failure = classify(TurnFailedError("model_error", None, retryable=True, retry_after=asked))
        assert failure.model_busy
        assert policy(RecordingSqs()).retry_delay(record, failure.retry_after) == waited
    assert MODEL_WAIT_MAX_S == 900


def test_a_deferrable_record_is_copied_until_the_limit_then_left_to_the_dead_letter() -> None:
    sqs = RecordingSqs()
    outcome = policy(sqs).requeue(SqsRecord.from_event(raw("m", requeues=2)), KEY, reason="busy")
    assert outcome == RecordOutcome(done=True, status="requeued")
    [copy] = sqs.sent
    assert copy["QueueUrl"] == "inbound" and copy["MessageGroupId"] == KEY.canonical
    assert copy["MessageDeduplicationId"] == "requeue-m"
    assert copy["MessageAttributes"][REQUEUES_ATTRIBUTE]["StringValue"] == "3"
    assert (
        policy(sqs).requeue(SqsRecord.from_event(raw("n", requeues=MAX_REQUEUES)), KEY, reason="busy") is None
    )
    assert policy(sqs, inbound="").requeue(SqsRecord.from_event(raw("o")), KEY, reason="busy") is None
    assert len(sqs.sent) == 1


def test_a_dead_letter_carries_its_context() -> None:
    sqs = RecordingSqs()
    record = SqsRecord.from_event(raw("m", "G", receives=3, requeues=1))
    outcome = policy(sqs).dead_letter(record, update_id=42, key=KEY, error_kind="model_error", detail="boom")
    assert outcome == RecordOutcome(done=True, status="dead_lettered")
    [letter] = sqs.sent
    attributes = {name: value["StringValue"] for name, value in letter["MessageAttributes"].items()}
    assert attributes == {
        "error_kind": "model_error",
        "error_detail": "boom",
        "update_id": "42",
        "session_key": KEY.canonical,
        "receive_count": "3",
        "source_message_id": "m",
        "requeues": "1",
    }
    assert letter["QueueUrl"] == "dlq" and letter["MessageDeduplicationId"] == "dlq-m"


def test_an_undecodable_record_is_dead_lettered_under_its_own_group() -> None:
    sqs = RecordingSqs()
    policy(sqs).dead_letter(
        SqsRecord.from_event(raw("m", "")), update_id=None, key=None, error_kind="x", detail=""
    )
    assert sqs.sent[0]["MessageGroupId"] == "undecodable"


def test_retry_delays_are_set_on_the_records_visibility() -> None:
    sqs = RecordingSqs()
    failed = [(SqsRecord.from_event(raw("m")), 20)]
    policy(sqs).delay_retries(failed)
    assert sqs.hidden == [{"QueueUrl": "inbound", "ReceiptHandle": "rh-m", "VisibilityTimeout": 20}]
    policy(sqs, inbound="").delay_retries(failed)
    assert len(sqs.hidden) == 1
