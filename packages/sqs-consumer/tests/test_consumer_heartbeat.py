"""The consumer's batch keeps its records hidden while it runs, through Consumer.handle_batch as
the Lambda handler calls it: real queue and table (moto over HTTP, real boto3), a Bot API server
on 127.0.0.1, a runtime stand-in. Short heartbeat values stand in for the production 180 s / 50 s."""

from __future__ import annotations

import threading
import time
from typing import Any

from agentbot_testing.telegram_support import answered, failed, queue_inbound
from local_stack import LocalTelegram, sqs_lambda_event
from session_core import SessionKey, TurnRequest, TurnResult
from sqs_consumer import Consumer, ConsumerTiming
from structlog.testing import capture_logs
from telegram_core import (
    InboundMessage,
)

CHAT = 4242
KEY = SessionKey(tenant="default", chat_id=CHAT)
VISIBILITY_S = 2
INTERVAL_S = 0.5


class SlowRuntime:
    """The runtime's part: each turn takes ``seconds``, then answers (or fails, retryable)."""

    def __init__(self, seconds: float, *, fail: bool = False) -> None:
        self.seconds = seconds
        self.fail = fail
        self.turns: list[TurnRequest] = []

    def run_turn(self, request: TurnRequest) -> TurnResult:
        self.turns.append(request)
        time.sleep(self.seconds)
        if self.fail:
            return failed(request)
        return answered(request, "Done.")


class SlowRenewals:
    """The real SQS client, each renewal reaching SQS ``delay_s`` after it was asked for."""

    def __init__(self, sqs: Any, *, delay_s: float) -> None:
        self._sqs = sqs
        self._delay_s = delay_s
        self.calls = 0

    def change_message_visibility_batch(self, **kwargs: Any) -> Any:
        self.calls += 1
        time.sleep(self._delay_s)
        return self._sqs.change_message_visibility_batch(**kwargs)


def consumer(
    make_consumer: Any,
    runtime: SlowRuntime,
    *,
    inbound_queue_url: str | None = None,
    heartbeat_sqs: Any = None,
    retry_base_delay_s: int = 0,
) -> Consumer:
    timing = ConsumerTiming(
        record_retry_backoff_s=0.01,
        retry_base_delay_s=retry_base_delay_s,
        heartbeat_visibility_s=VISIBILITY_S,
        heartbeat_interval_s=INTERVAL_S,
    )
    config = {"inbound_queue_url": inbound_queue_url} if inbound_queue_url else {}
    return make_consumer(runtime, config=config, deps={"heartbeat_sqs": heartbeat_sqs}, timing=timing)


def queue_message(aws: Any, update_id: int, **receive: Any) -> list[dict[str, Any]]:
    """Queue a private chat's message and receive it as Lambda's poller does (hidden for the
    queue's own visibility timeout, the stack's 5,400 s, unless ``receive`` says otherwise)."""
    msg = InboundMessage(
        update_id=update_id,
        session_key=KEY.canonical,
        kind="message",
        chat_id=CHAT,
        chat_type="private",
        message_id=update_id,
        user_id=CHAT,
        user_name="ada",
        text="take your time",
        sent_at=int(time.time()),
    )
    queue_inbound(aws.sqs, aws.resources.queue_url, msg)
    messages: list[dict[str, Any]] = aws.sqs.receive_message(
        QueueUrl=aws.resources.queue_url,
        MaxNumberOfMessages=10,
        MessageSystemAttributeNames=["All"],
        **receive,
    )["Messages"]
    return messages


def lambda_event(aws: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    return sqs_lambda_event(messages, queue_arn=aws.resources.queue_arn, region=aws.sqs.meta.region_name)


def receivable_within(aws: Any, seconds: float, *, until: threading.Event | None = None) -> float | None:
    """Seconds until another receiver gets a record (None: nobody did within ``seconds``, or
    before ``until`` was set)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds and not (until and until.is_set()):
        got = aws.sqs.receive_message(
            QueueUrl=aws.resources.queue_url, WaitTimeSeconds=0, VisibilityTimeout=60
        ).get("Messages")
        if got:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def test_a_turn_longer_than_the_heartbeats_visibility_keeps_its_record_from_a_second_consumer(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """The turn runs three times the heartbeat's visibility; meanwhile nobody else receives its
    record (Lambda would have handed it to a second invocation), and the answer goes out once.
    Received for 1 s only, the record stays hidden because the heartbeat renews it."""
    runtime = SlowRuntime(3 * VISIBILITY_S)
    worker = consumer(make_consumer, runtime)
    event = lambda_event(aws, queue_message(aws, 7001, VisibilityTimeout=1))
    done = threading.Event()
    answers: list[Any] = []

    def invocation() -> None:
        answers.append(worker.handle_batch(event))
        done.set()

    thread = threading.Thread(target=invocation)
    thread.start()
    try:
        assert receivable_within(aws, 4 * VISIBILITY_S, until=done) is None
    finally:
        thread.join(30)
    assert answers == [{"batchItemFailures": []}]
    assert len(runtime.turns) == 1
    assert [m["text"] for m in telegram.sent_messages(CHAT)][-1:] == ["Done."]


def test_a_failed_records_retry_delay_is_not_overwritten_by_a_late_renewal(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """The turn fails (retryable) while a renewal is on its way to SQS (it takes 0.5 s): the
    record comes back after its 6 s retry delay, not after the heartbeat's 2 s."""
    renewals = SlowRenewals(aws.sqs, delay_s=0.5)
    worker = consumer(
        make_consumer, SlowRuntime(0.1, fail=True), heartbeat_sqs=renewals, retry_base_delay_s=6
    )
    answer = worker.handle_batch(lambda_event(aws, queue_message(aws, 7002)))
    assert len(answer["batchItemFailures"]) == 1 and renewals.calls >= 1
    assert receivable_within(aws, VISIBILITY_S + 2) is None
    assert receivable_within(aws, 6) is not None


def test_renewals_that_fail_do_not_fail_the_batch_and_are_logged(
    aws: Any, telegram: LocalTelegram, make_consumer: Any
) -> None:
    """INBOUND_QUEUE_URL names a queue that does not exist: every renewal fails, the turn is
    answered all the same and the batch succeeds; the operator reads the warnings."""
    wrong = aws.resources.queue_url.replace(".fifo", "-gone.fifo")
    worker = consumer(make_consumer, SlowRuntime(2.5 * INTERVAL_S), inbound_queue_url=wrong)
    with capture_logs() as logs:
        answer = worker.handle_batch(lambda_event(aws, queue_message(aws, 7003)))
    assert answer == {"batchItemFailures": []}
    failures = [e for e in logs if e["event"] == "visibility_not_renewed"]
    assert len(failures) >= 2 and {e["log_level"] for e in failures} == {"warning"}, logs
    assert [m["text"] for m in telegram.sent_messages(CHAT)][-1:] == ["Done."]
