"""A message whose handling kills the consumer (out of memory, Lambda's timeout: nothing it can
catch) comes back until the queue dead-letters it. The consumer marks the start of a message's
try before last and removes the mark at every end it handles; a last try that finds the mark
tells the user first, then runs the work again. Through Consumer.handle_batch as the Lambda
handler calls it: real queue and table (moto over HTTP, real boto3), a Bot API server on
127.0.0.1, a runtime stand-in. Here a try dies by a BaseException from the runtime, which no
handler of the consumer catches; tests/test_consumer_crash_loop.py kills the real consumer
process with SIGKILL instead."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from agentbot_testing.telegram_support import answered, failed, queue_inbound
from local_stack import LocalTelegram, sqs_lambda_event
from session_core import MAX_RECEIVE_COUNT, AttemptMarks, SessionKey, TurnRequest, TurnResult
from sqs_consumer import FAILURE_WORDING, LAST_TRY_NOTICE, Consumer, ConsumerTiming
from structlog.testing import capture_logs
from telegram_core import InboundMessage

CHAT = -100777
KEY = SessionKey(tenant="default", chat_id=CHAT, thread_id=7)
MESSAGE_ID = 40
TRY_BEFORE_LAST = MAX_RECEIVE_COUNT - 1


class WorkerKilled(BaseException):
    """The consumer killed mid-turn (Lambda's timeout, out of memory): no ``except Exception``
    of the consumer catches it, as nothing catches a SIGKILL."""


class ScriptedRuntime:
    """The runtime's part: each turn does the next step of its script: "answer", "fail" (a
    retryable model error), "raise" (an exception: a bug somewhere) or "die". Notes how many
    messages the chat had been sent when each turn started."""

    def __init__(self, telegram: LocalTelegram, *script: str) -> None:
        self._telegram = telegram
        self._script = list(script)
        self.sent_before: list[int] = []

    def run_turn(self, request: TurnRequest) -> TurnResult:
        self.sent_before.append(len(self._telegram.sent_messages(CHAT)))
        step = self._script.pop(0)
        if step == "die":
            raise WorkerKilled
        if step == "raise":
            raise RuntimeError("a bug")
        if step == "fail":
            return failed(request)
        return answered(request, "Here it is.")


def queue_message(aws: Any, update_id: int, *, chat_id: int = CHAT) -> None:
    """A mention in the forum topic, queued as the producer queues it."""
    key = SessionKey(tenant="default", chat_id=chat_id, thread_id=KEY.thread_id)
    msg = InboundMessage(
        update_id=update_id,
        session_key=key.canonical,
        kind="message",
        chat_id=chat_id,
        chat_type="supergroup",
        message_id=MESSAGE_ID,
        thread_id=key.thread_id,
        user_id=77,
        user_name="alice",
        text="what is new?",
        sent_at=int(time.time()),
    )
    queue_inbound(aws.sqs, aws.resources.queue_url, msg)


def receive_at(aws: Any, receive_count: int) -> dict[str, Any]:
    """The only queued record, as Lambda's poller takes it on its ``receive_count``-th receive
    (the receives before are let go at once, as the consumer's retries of 0 s here do)."""
    while True:
        [message] = aws.sqs.receive_message(
            QueueUrl=aws.resources.queue_url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )["Messages"]
        count = int(message["Attributes"]["ApproximateReceiveCount"])
        if count == receive_count:
            return message
        assert count < receive_count, message["Attributes"]
        let_go(aws, message)


def let_go(aws: Any, message: dict[str, Any]) -> None:
    """The record is receivable again at once (a dead consumer's heartbeat ran out)."""
    aws.sqs.change_message_visibility(
        QueueUrl=aws.resources.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )


def handle(aws: Any, worker: Consumer, message: dict[str, Any]) -> dict[str, Any]:
    """One invocation of the consumer with ``message``: its partial batch response."""
    event = sqs_lambda_event([message], queue_arn=aws.resources.queue_arn, region=aws.sqs.meta.region_name)
    return dict(worker.handle_batch(event))


def run(aws: Any, worker: Consumer, message: dict[str, Any]) -> dict[str, Any]:
    """``handle``, then what Lambda's event source does: a record not reported failed is deleted."""
    response = handle(aws, worker, message)
    if not response["batchItemFailures"]:
        aws.sqs.delete_message(QueueUrl=aws.resources.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return response


def texts(telegram: LocalTelegram, chat_id: int = CHAT) -> list[str]:
    return [m["text"] for m in telegram.sent_messages(chat_id)]


def dead_letters(aws: Any) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = aws.sqs.receive_message(
        QueueUrl=aws.resources.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])
    return got


def test_a_try_before_last_that_died_gets_the_user_a_word_before_the_last_try(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """The try before last dies mid-turn: nothing is said then (nothing can be). The last try
    finds its mark, tells the user in the topic, quoting their message, then runs the turn
    again and answers after the notice."""
    runtime = ScriptedRuntime(telegram, "die", "answer")
    worker = make_consumer(runtime)
    queue_message(aws, 501)
    message = receive_at(aws, TRY_BEFORE_LAST)
    with pytest.raises(WorkerKilled):
        run(aws, worker, message)
    assert texts(telegram) == []
    let_go(aws, message)

    assert run(aws, worker, receive_at(aws, MAX_RECEIVE_COUNT)) == {"batchItemFailures": []}
    notice, answer = telegram.sent_messages(CHAT)
    assert notice["text"] == LAST_TRY_NOTICE
    assert notice["reply_to_message"]["message_id"] == MESSAGE_ID
    assert notice["message_thread_id"] == KEY.thread_id
    assert answer["text"] == "Here it is."
    assert runtime.sent_before == [0, 1]  # the word went before the last try's turn


@pytest.mark.parametrize("ended", ["fail", "raise"], ids=["failed_turn", "unexpected_exception"])
def test_a_try_before_last_the_consumer_handled_gets_no_word_on_the_last(
    aws: Any, telegram: LocalTelegram, make_consumer: Any, ended: str
) -> None:
    """A turn that failed and is retried, or an exception the batch caught, is an end the
    consumer handled: the last try says nothing more than its answer."""
    worker = make_consumer(ScriptedRuntime(telegram, ended, "answer"))
    queue_message(aws, 502)
    assert run(aws, worker, receive_at(aws, TRY_BEFORE_LAST))["batchItemFailures"]
    assert run(aws, worker, receive_at(aws, MAX_RECEIVE_COUNT)) == {"batchItemFailures": []}
    assert texts(telegram) == ["Here it is."]


def test_a_last_try_that_fails_after_the_word_ends_with_the_usual_final_message_once(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """The word before the last try, then that try's failure for good: its own final message,
    then the dead letter, each once even when the record is handled a second time."""
    worker = make_consumer(ScriptedRuntime(telegram, "die", "fail", "fail"))
    queue_message(aws, 503)
    message = receive_at(aws, TRY_BEFORE_LAST)
    with pytest.raises(WorkerKilled):
        run(aws, worker, message)
    let_go(aws, message)
    last = receive_at(aws, MAX_RECEIVE_COUNT)
    assert handle(aws, worker, last) == {"batchItemFailures": []}
    assert run(aws, worker, last) == {"batchItemFailures": []}  # a second delivery of it
    assert texts(telegram) == [LAST_TRY_NOTICE, FAILURE_WORDING["model_error"]]
    [letter] = dead_letters(aws)
    assert letter["MessageAttributes"]["error_kind"]["StringValue"] == "model_error"


def test_a_last_try_that_dies_too_leaves_the_user_the_word(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """Killed again on the last try: the queue's redrive dead-letters the message and the
    operator's alarm fires; the user was told what would happen."""
    worker = make_consumer(ScriptedRuntime(telegram, "die", "die"))
    queue_message(aws, 504)
    for receive_count in (TRY_BEFORE_LAST, MAX_RECEIVE_COUNT):
        message = receive_at(aws, receive_count)
        with pytest.raises(WorkerKilled):
            run(aws, worker, message)
        let_go(aws, message)
    assert texts(telegram) == [LAST_TRY_NOTICE]


def test_a_telegram_that_holds_the_word_does_not_keep_the_last_try_past_its_end(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """The word is sent as the last try starts: waited for with every retry of the client,
    a Telegram that holds it would keep the invocation past its end, and Lambda would kill
    the last try too (the record then dead-lettered by the queue, its outcome unsaid)."""
    invocation_s = 20.0
    worker = make_consumer(
        ScriptedRuntime(telegram, "die", "answer"),
        timing=ConsumerTiming(delivery_reserve_s=15.0, record_retry_backoff_s=0.01, retry_base_delay_s=0),
    )
    queue_message(aws, 508)
    message = receive_at(aws, TRY_BEFORE_LAST)
    with pytest.raises(WorkerKilled):
        run(aws, worker, message)
    let_go(aws, message)

    def hold(method: str, params: dict[str, Any]) -> None:
        if method == "sendMessage":
            time.sleep(6)  # longer than the client's timeout: each try of the word is cut

    telegram.on_call = hold
    last = receive_at(aws, MAX_RECEIVE_COUNT)
    event = sqs_lambda_event([last], queue_arn=aws.resources.queue_arn, region=aws.sqs.meta.region_name)
    ends = time.monotonic() + invocation_s
    response = worker.handle_batch(event, remaining_time_ms=lambda: int((ends - time.monotonic()) * 1000))
    assert time.monotonic() < ends, "the last try ran past its invocation's end"
    # Too little time was left for the turn: put off (a fresh copy queued), not lost.
    assert response == {"batchItemFailures": []}


class RecordedDynamoDB:
    """A DynamoDB client of the test stack whose requests are noted: (operation, whether it
    touches a try's mark), cleared by ``take``."""

    def __init__(self, aws: Any) -> None:
        self.client = aws.client("dynamodb")
        self._calls: list[tuple[str, bool]] = []
        self.client.meta.events.register("before-parameter-build.dynamodb", self._note)

    def _note(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self._calls.append((model.name, '"attempt|' in json.dumps(params, default=str)))

    def take(self) -> list[tuple[str, bool]]:
        taken, self._calls = self._calls, []
        return taken


def requests_per_receive(
    aws: Any, worker: Consumer, dynamodb: RecordedDynamoDB
) -> list[list[tuple[str, bool]]]:
    """Each receive of the only queued record, handled by ``worker`` until it is answered: the
    DynamoDB requests each one made."""
    made = []
    for receive_count in range(1, MAX_RECEIVE_COUNT + 1):
        dynamodb.take()
        response = run(aws, worker, receive_at(aws, receive_count))
        made.append(dynamodb.take())
        if not response["batchItemFailures"]:
            break
    return made


def test_only_the_try_before_last_and_the_last_make_requests_for_the_mark(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """Every earlier receive makes exactly the requests it made without marks (an answer on
    the first receive included); the try before last writes its mark and removes it, the last
    reads it: three requests per message that got that far, none for the others."""
    script = ("fail",) * (MAX_RECEIVE_COUNT - 1) + ("answer",)
    made = {}
    for update_id, attempts in ((505, "on"), (506, "off")):
        dynamodb = RecordedDynamoDB(aws)
        worker = make_consumer(
            ScriptedRuntime(telegram, *script),
            dynamodb=dynamodb.client,
            deps={} if attempts == "on" else {"attempts": None},
        )
        queue_message(aws, update_id)
        made[attempts] = requests_per_receive(aws, worker, dynamodb)
    on, off = made["on"], made["off"]
    assert len(on) == len(off) == MAX_RECEIVE_COUNT
    assert on[: TRY_BEFORE_LAST - 1] == off[: TRY_BEFORE_LAST - 1]  # receives 1-3: nothing more
    marks = [[operation for operation, for_mark in receive if for_mark] for receive in on]
    assert marks == [[]] * (TRY_BEFORE_LAST - 1) + [["PutItem", "DeleteItem"], ["GetItem"]]
    assert [r for receive in on for r in receive if not r[1]] == [r for receive in off for r in receive]

    # The happy path: a message answered at once makes no request for a mark.
    dynamodb = RecordedDynamoDB(aws)
    worker = make_consumer(ScriptedRuntime(telegram, "answer"), dynamodb=dynamodb.client)
    queue_message(aws, 507, chat_id=CHAT - 1)
    [first] = requests_per_receive(aws, worker, dynamodb)
    assert first and not [r for r in first if r[1]]


def test_a_mark_that_cannot_be_written_or_read_is_logged_and_the_message_handled_as_ever(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    broken = AttemptMarks(dynamodb=aws.dynamodb, table="no-such-table")
    worker = make_consumer(ScriptedRuntime(telegram, "fail", "answer"), deps={"attempts": broken})
    queue_message(aws, 508)
    with capture_logs() as logs:
        assert run(aws, worker, receive_at(aws, TRY_BEFORE_LAST))["batchItemFailures"]
        assert run(aws, worker, receive_at(aws, MAX_RECEIVE_COUNT)) == {"batchItemFailures": []}
    assert texts(telegram) == ["Here it is."]
    failures = [e for e in logs if e["event"] == "attempt_mark_failed"]
    assert [e["operation"] for e in failures] == ["attempt_marks.started", "attempt_marks.left_unfinished"]
    assert all(
        e["log_level"] == "warning" and e["error_code"] == "ResourceNotFoundException" for e in failures
    )
