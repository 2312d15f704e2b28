"""The consumer's time and retry rules with real parts (moto, the runtime stub behind the
local Lambda runtime, the local Bot API server): a busy session is waited for, never
dead-lettered; Telegram's retry_after is honoured by SQS; an answer that is recorded but not
yet sent is never dead-lettered; a throttled delivery record is retried, not resent; the
runtime gets a deadline inside the consumer's invocation, and the answer's delivery ends
inside it too."""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from agentbot_testing import AwsFault as AwsFault
from agentbot_testing import FaultProxy
from agentbot_testing.telegram_stack import RUNTIME_FUNCTION, wait_until
from agentbot_testing.telegram_support import long_markdown, update
from botocore.config import Config
from local_stack import LOCAL_CREDENTIALS, TelegramFault, sqs_lambda_event
from session_core import MAX_RECEIVE_COUNT, TURN_VERSION, TurnRequest, encode
from sqs_consumer import (
    DELIVERY_RESERVE_S,
    FAILED_NOTICE,
    FAILURE_WORDING,
    MAX_REQUEUES,
    REQUEUES_ATTRIBUTE,
    html_to_plain,
    render_reply,
    runtime_client_config,
)
from telegram_core import decode_envelope

pytestmark = pytest.mark.slow

CHAT = 501
REGION = LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"]


def event(stack, messages: list[dict]) -> dict:
    return sqs_lambda_event(messages, queue_arn=stack.aws.resources.queue_arn, region=REGION)


def run_elsewhere(stack, raw: dict) -> threading.Thread:
    """Another invocation of the runtime for the record's update (say, the one a previous
    consumer started before its connection broke); returns once it holds the session's lease."""
    msg = decode_envelope(raw["Body"]).message
    request = TurnRequest(
        version=TURN_VERSION, session_key=msg.session_key, turn_id=msg.update_id, prompt=msg.text
    )
    client = boto3.client("lambda", config=runtime_client_config())
    thread = threading.Thread(
        target=lambda: client.invoke(FunctionName=RUNTIME_FUNCTION, Payload=encode(request)), daemon=True
    )
    thread.start()

    def lease_held() -> bool:
        item = stack.aws.dynamodb.get_item(
            TableName=stack.aws.resources.table,
            Key={"pk": {"S": f"session|{msg.session_key}"}, "sk": {"S": "meta"}},
            ConsistentRead=True,
        ).get("Item", {})
        return "lease_owner" in item

    assert wait_until(lease_held, timeout_s=20)
    return thread


def test_busy_session_on_the_last_receive_waits_for_the_live_turn_and_delivers_its_answer(stack) -> None:
    stack.post(update(180, text="sleep:3 slow one"))
    raw = stack.receive_for_the_last_time()
    other = run_elsewhere(stack, raw)
    response = stack.consumer().handle_batch(event(stack, [raw]))
    other.join(timeout=20)
    assert response["batchItemFailures"] == []
    assert [m["text"] for m in stack.replies(CHAT)] == ["Answer to: sleep:3 slow one"]
    assert len(stack.runs()) == 1  # the waiting consumer got the other run's answer replayed
    assert stack.dead_letters() == []


def test_busy_past_what_the_invocation_can_wait_is_requeued_never_dead_lettered(stack) -> None:
    # Long enough that the other run still holds the session when this consumer invokes,
    # however slowly a loaded machine starts it.
    stack.post(update(181, text="sleep:8 slow two"))
    raw = stack.receive_for_the_last_time()
    other = run_elsewhere(stack, raw)
    # Just enough time left to invoke once, not to wait for the live turn.
    response = stack.consumer().handle_batch(
        event(stack, [raw]), remaining_time_ms=lambda: int((DELIVERY_RESERVE_S + 5) * 1000)
    )
    assert response["batchItemFailures"] == []  # acknowledged: a copy is back on the queue
    stack.aws.sqs.delete_message(QueueUrl=stack.aws.resources.queue_url, ReceiptHandle=raw["ReceiptHandle"])
    assert stack.dead_letters() == []
    assert all(m["text"] != FAILURE_WORDING["busy"] for m in stack.replies())
    other.join(timeout=20)
    [copy] = stack.receive()
    assert copy["MessageAttributes"][REQUEUES_ATTRIBUTE]["StringValue"] == "1"
    assert copy["Body"] == raw["Body"]
    stack.aws.sqs.change_message_visibility(
        QueueUrl=stack.aws.resources.queue_url, ReceiptHandle=copy["ReceiptHandle"], VisibilityTimeout=0
    )
    stack.drain(stack.consumer())
    assert [m["text"] for m in stack.replies(CHAT)] == ["Answer to: sleep:8 slow two"]
    assert len(stack.runs()) == 1


def test_too_little_time_left_defers_the_record_without_invoking_the_runtime(stack) -> None:
    stack.post(update(182, text="hi"))
    [raw] = stack.receive()
    response = stack.consumer().handle_batch(
        event(stack, [raw]), remaining_time_ms=lambda: int(DELIVERY_RESERVE_S * 1000)
    )
    assert response["batchItemFailures"] == [{"itemIdentifier": raw["MessageId"]}]
    assert stack.runs() == [] and stack.replies() == [] and stack.dead_letters() == []


def test_runtime_gets_a_deadline_that_leaves_the_consumer_time_to_deliver(stack) -> None:
    stack.post(update(183, text="hi"))
    [raw] = stack.receive()
    picked_up_ms = time.time() * 1000
    ends_ms = picked_up_ms + 100_000  # as Lambda's context counts down to the function's timeout
    stack.consumer().handle_batch(
        event(stack, [raw]), remaining_time_ms=lambda: int(ends_ms - time.time() * 1000)
    )
    [run] = stack.runs()
    # (+100 ms: the consumer reads the countdown and the clock one after the other)
    latest = ends_ms - DELIVERY_RESERVE_S * 1000 + 100
    assert picked_up_ms < run["deadline_epoch_ms"] <= latest
    assert len(stack.replies(CHAT)) == 1


def test_long_retry_after_keeps_the_record_hidden_that_long(stack) -> None:
    """The Bot API client gives up on waits above its limit; SQS must then wait retry_after,
    not the shorter backoff."""
    stack.telegram.inject("sendMessage", TelegramFault.retry_after_seconds(4))
    stack.post(update(184, text="hi"))
    [raw] = stack.receive()
    consumer = stack.consumer(max_retry_after_s=1, retry_base_delay_s=1)
    assert consumer.handle_batch(event(stack, [raw]))["batchItemFailures"]
    assert not wait_until(lambda: bool(stack.receive()), timeout_s=2.5)  # backoff alone: 1 s
    assert wait_until(lambda: bool(stack.receive()), timeout_s=8)


def test_answer_that_cannot_be_sent_on_the_last_receive_is_requeued_then_delivered(stack) -> None:
    # Telegram refuses every receive's try: on the last one the record is requeued, not dead-lettered.
    stack.telegram.inject("sendMessage", TelegramFault.retry_after_seconds(60), times=MAX_RECEIVE_COUNT)
    stack.post(update(185, text="paid answer"))
    responses = stack.drain(stack.consumer())
    assert [bool(r["batchItemFailures"]) for r in responses] == [True] * (MAX_RECEIVE_COUNT - 1) + [
        False,
        False,
    ]
    assert [c.status for c in stack.telegram.calls("sendMessage")] == [429] * MAX_RECEIVE_COUNT + [200]
    assert [m["text"] for m in stack.replies(CHAT)] == ["Answer to: paid answer"]
    assert len(stack.runs()) == 1
    assert stack.dead_letters() == []


def test_a_record_requeued_too_often_is_dead_lettered_with_the_generic_notice(stack) -> None:
    stack.post(update(186, text="hi"))
    [raw] = stack.receive()
    stack.aws.sqs.delete_message(QueueUrl=stack.aws.resources.queue_url, ReceiptHandle=raw["ReceiptHandle"])
    stack.aws.sqs.send_message(
        QueueUrl=stack.aws.resources.queue_url,
        MessageBody=raw["Body"],
        MessageGroupId="default/501/0",
        MessageDeduplicationId="requeued-often",
        MessageAttributes={REQUEUES_ATTRIBUTE: {"DataType": "Number", "StringValue": str(MAX_REQUEUES)}},
    )
    stack.telegram.inject("sendMessage", TelegramFault.retry_after_seconds(60), times=MAX_RECEIVE_COUNT)
    stack.drain(stack.consumer())
    [notice] = stack.replies(CHAT)
    assert notice["text"] == FAILED_NOTICE
    [dead] = stack.dead_letters()
    attrs = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attrs["error_kind"] == "delivery" and attrs["requeues"] == str(MAX_REQUEUES)


def test_throttled_delivery_record_is_retried_not_the_message_sent_again(stack) -> None:
    # botocore's own retries off, so the consumer's retry of the write is what is tested.
    throttle = AwsFault(
        "dynamodb:UpdateItem",
        times=2,
        status=400,
        code="ProvisionedThroughputExceededException",
        message="The level of configured provisioned throughput for the table was exceeded.",
        # the write that records chunk 0 as sent, with its message id (not the claim taken
        # before sending it)
        when=lambda operation, body: b'"chunk_0"' in body and b'":mid"' in body,
    )
    with FaultProxy(stack.aws.endpoint, [throttle]) as proxy:
        dynamodb = proxy.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))
        stack.post(update(187, text="hi"))
        responses = stack.drain(stack.consumer(dynamodb=dynamodb))
    assert proxy.failed == ["dynamodb:UpdateItem"] * 2
    assert [r["batchItemFailures"] for r in responses] == [[]]
    assert [m["text"] for m in stack.replies(CHAT)] == ["Answer to: hi"]


def test_a_text_telegram_took_but_whose_answer_was_lost_is_sent_again_rather_than_left_missing(stack) -> None:
    """Decided (README, "Exactly one reply"): the Bot API has no idempotency key and a bot can
    neither read its chat nor find a message it has no id of, so nothing can tell whether a
    send whose answer was lost arrived; a file is then named as "may not have arrived", a
    text goes again: the user may read it twice, never miss it."""
    stack.telegram.inject("sendMessage", TelegramFault.served_then_dropped())
    stack.post(update(188, text="hi"))
    responses = stack.drain(stack.consumer())
    assert [r["batchItemFailures"] for r in responses] == [[]]
    assert [m["text"] for m in stack.replies(CHAT)] == ["Answer to: hi", "Answer to: hi"]
    assert len(stack.runs()) == 1


INVOCATION_S = 30.0


def invoke_for(stack, raw: dict, invocation_s: float) -> dict:
    """Hand ``raw`` to a consumer invocation of ``invocation_s`` (the runtime's deadline 15 s
    before its end); its batch response, once it is checked to have ended in time."""
    ends = time.monotonic() + invocation_s
    response = stack.consumer(delivery_reserve_s=15.0).handle_batch(
        event(stack, [raw]), remaining_time_ms=lambda: int((ends - time.monotonic()) * 1000)
    )
    took_s = invocation_s - (ends - time.monotonic())
    assert took_s < invocation_s, f"the invocation ran {took_s:.1f} s of its {invocation_s:.0f} s"
    return response


def shown(stack) -> list[str]:
    """What the chat shows, in order: each text, and each file as its name."""
    files = {f.message["message_id"]: f.file_name for f in stack.telegram.sent_files(CHAT)}
    return [files[m["message_id"]] if m["message_id"] in files else m["text"] for m in stack.replies(CHAT)]


@pytest.mark.parametrize(
    ("words", "held"),
    [
        ("long:10000", ("sendMessage",)),  # every part after the first
        ("hi files:4", ("sendPhoto", "sendDocument")),  # the files after the text
    ],
    ids=["text", "files"],
)
def test_a_telegram_that_holds_the_answer_does_not_keep_the_consumer_past_its_end(stack, words, held) -> None:
    """Lambda stops an invocation at its end, whatever it was doing: a delivery still waiting on
    Telegram then would leave the record's outcome unsaid, the record hidden for minutes, and
    the rest of the answer (or a part sent twice) to whichever try comes next."""
    released = threading.Event()  # set at the end: until then Telegram holds those sends

    def hold_after_the_first(method: str, params: dict) -> None:
        if method in held and stack.replies(CHAT):
            released.wait(120)
            # What Telegram says at last, too late: the held send never reached the chat.
            stack.telegram.inject(method, TelegramFault.server_error(502))

    stack.telegram.on_call = hold_after_the_first
    stack.post(update(188, text=words))
    [raw] = stack.receive()
    try:
        response = invoke_for(stack, raw, INVOCATION_S)
    finally:
        released.set()
    assert response["batchItemFailures"] == [{"itemIdentifier": raw["MessageId"]}]  # tried again
    first_try = shown(stack)
    stack.telegram.on_call = None
    stack.aws.sqs.change_message_visibility(
        QueueUrl=stack.aws.resources.queue_url, ReceiptHandle=raw["ReceiptHandle"], VisibilityTimeout=0
    )
    stack.drain(stack.consumer())
    assert len(stack.runs()) == 1  # replayed, not run again
    assert stack.dead_letters() == []
    now = shown(stack)
    assert now[: len(first_try)] == first_try and len(now) == len(set(now))  # each part once
    if held == ("sendMessage",):
        assert len(first_try) == 1  # the first part came; nothing said it failed
        assert len(now) == len(render_reply(long_markdown(10000)))  # the rest after it
    else:
        assert first_try == ["Answer to: hi files:4"]
        # A held upload may have gone (its answer never came): named, not sent twice; the
        # files never begun went on the retry.
        files = ["chart.png", "data.csv", "notes-3.txt", "notes-4.txt"]
        assert "notes-4.txt" in now and "may not have arrived" in now[-1]
        assert all((name in now) != (name in now[-1]) for name in files), now


def test_a_telegram_that_holds_the_failure_notice_does_not_keep_the_consumer_past_its_end(stack) -> None:
    """Killed while the notice waits, the record would go without its dead letter and come back
    to run (and pay for) its turn again, the notice perhaps twice."""
    released = threading.Event()  # set at the end: until then Telegram holds every message

    def hold(method: str, params: dict) -> None:
        if method == "sendMessage":
            released.wait(120)
            stack.telegram.inject(method, TelegramFault.server_error(502))  # too late, and refused

    stack.telegram.on_call = hold
    stack.post(update(189, text="fail:bad_request"))
    [raw] = stack.receive()
    try:
        response = invoke_for(stack, raw, INVOCATION_S)
    finally:
        released.set()
    assert response["batchItemFailures"] == []  # its outcome settled: dead-lettered, acknowledged
    [dead] = stack.dead_letters()
    assert dead["MessageAttributes"]["error_kind"]["StringValue"] == "bad_request"
    assert stack.replies(CHAT) == [] and len(stack.runs()) == 1


def test_a_retry_without_the_first_tries_history_notice_still_sends_the_parts_the_user_has_not_got(
    stack,
) -> None:
    """The first try's answer carries the history notice (the runtime does not record it, so the
    retry's replay has none): with it the text splits in two, without it it fits in one. The
    retry delivers the parts of the answer the first try began, not a list whose index 0 now
    names the whole text (recorded as sent, so its last paragraph would never go)."""
    # One paragraph (the stub reads its script from the prompt's last one), six lines.
    prompt = "history:62/76 " + "\n".join(f"Line {i}: " + "word " * 130 for i in range(6))
    first_try = [html_to_plain(c) for c in render_reply(f"Answer to: {prompt}\n\n{HISTORY_NOTE}")]
    assert len(first_try) == 2 and len(render_reply(f"Answer to: {prompt}")) == 1
    fail_nth(stack, "sendMessage", 2)
    stack.post(update(189, text=prompt))
    responses = stack.drain(stack.consumer())
    assert [bool(r["batchItemFailures"]) for r in responses] == [True, False]
    assert [m["text"] for m in stack.replies(CHAT)] == first_try  # each part once, none missing
    assert len(stack.runs()) == 1


HISTORY_NOTE = (
    "_⚠️ This conversation is long: 62 MB of history, and at about 76 MB I can no longer "
    "continue it. Send /new to start a fresh one._"
)


def fail_nth(stack, method: str, nth: int) -> None:
    """Make Telegram refuse the ``nth`` call of ``method`` (1-based) for longer than the client
    waits (a 429: it did not take the call), so the record is retried."""
    seen = {"n": 0}

    def on_call(called: str, params: dict) -> None:
        if called == method:
            seen["n"] += 1
            if seen["n"] == nth:
                stack.telegram.inject(method, TelegramFault.retry_after_seconds(60))

    stack.telegram.on_call = on_call
