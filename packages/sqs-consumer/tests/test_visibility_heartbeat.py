"""The visibility heartbeat against a real queue (moto over HTTP, real boto3): a consumer that
dies lets its records go within the heartbeat's short visibility, not the queue's 90 minutes;
one that lives keeps them however long it works; a renewal that fails is logged, never raised.
Short test values stand in for the production 180 s / 50 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from sqs_consumer import (
    HEARTBEAT_INTERVAL_S,
    HEARTBEAT_VISIBILITY_S,
    VisibilityHeartbeat,
    heartbeat_client_config,
    receipt_handles,
)
from structlog.testing import capture_logs

VISIBILITY_S = 2
INTERVAL_S = 0.5


def send(aws: Any, body: str = "turn", *, group: str | None = None) -> None:
    aws.sqs.send_message(
        QueueUrl=aws.resources.queue_url,
        MessageBody=body,
        MessageGroupId=group or uuid.uuid4().hex,
        MessageDeduplicationId=uuid.uuid4().hex,
    )


def receive(aws: Any, max_messages: int = 10, **kwargs: Any) -> list[dict[str, Any]]:
    """A receive as Lambda's poller makes it: hidden for the queue's own visibility timeout."""
    got: list[dict[str, Any]] = aws.sqs.receive_message(
        QueueUrl=aws.resources.queue_url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=0, **kwargs
    ).get("Messages", [])
    return got


def receivable_within(aws: Any, seconds: float) -> float | None:
    """Seconds until another receiver gets a record (None: nobody did within ``seconds``)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if receive(aws, VisibilityTimeout=60):
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def test_the_queue_hides_a_received_record_far_longer_than_these_tests_wait(aws: Any) -> None:
    """What the tests below stand on: without a heartbeat a received record stays hidden for
    the queue's visibility timeout (the stack's 5,400 s)."""
    queue = aws.sqs.get_queue_attributes(QueueUrl=aws.resources.queue_url, AttributeNames=["All"])
    assert int(queue["Attributes"]["VisibilityTimeout"]) >= 60
    send(aws)
    assert receive(aws)
    assert receivable_within(aws, VISIBILITY_S + 2) is None


# The consumer's part in a process of its own: it receives nothing, it keeps the record the
# test received hidden until it is killed, as Lambda kills a timed-out or out-of-memory one.
DYING_CONSUMER = """
import sys, time
import boto3
from sqs_consumer import VisibilityHeartbeat
queue_url, handle = sys.argv[1:3]
VisibilityHeartbeat(
    sqs=boto3.client("sqs"), queue_url=queue_url, receipt_handles=[handle], visibility_s=2, interval_s=0.5
).start()
print("working", flush=True)
time.sleep(3600)
"""


def test_a_record_whose_consumer_dies_mid_record_is_back_within_the_heartbeats_visibility(aws: Any) -> None:
    """Killed (Lambda's timeout, out of memory), the consumer reports nothing and stops
    nothing: its record is receivable again within the heartbeat's 2 s, not after the queue's
    visibility timeout. While it lived, nobody else got it, well past 2 s."""
    send(aws)
    [message] = receive(aws)
    worker = subprocess.Popen(
        [sys.executable, "-c", DYING_CONSUMER, aws.resources.queue_url, message["ReceiptHandle"]],
        stdout=subprocess.PIPE,
        env=os.environ.copy(),  # the test's endpoints and local credentials (the aws fixture's)
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline() == b"working\n"
        assert receivable_within(aws, 3 * VISIBILITY_S) is None  # several renewals kept it hidden
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    back_after = receivable_within(aws, VISIBILITY_S + 4)
    assert back_after is not None, "the record stayed hidden after its consumer died"
    assert back_after <= VISIBILITY_S + 2  # (LocalStack looks about once a second)


def test_a_record_handled_longer_than_the_heartbeats_visibility_is_not_handed_to_a_second_receiver(
    aws: Any,
) -> None:
    """Received for 1 s only, the record stays hidden for three times the heartbeat's
    visibility: the renewals alone keep it."""
    send(aws)
    [message] = receive(aws, VisibilityTimeout=1)
    with VisibilityHeartbeat(
        sqs=aws.sqs,
        queue_url=aws.resources.queue_url,
        receipt_handles=[message["ReceiptHandle"]],
        visibility_s=VISIBILITY_S,
        interval_s=INTERVAL_S,
    ) as heartbeat:
        assert receivable_within(aws, 3 * VISIBILITY_S) is None
    assert heartbeat.renewals >= 3
    # Stopped, it leaves the record to its last renewal: back soon unless the caller says otherwise.
    assert receivable_within(aws, VISIBILITY_S + 2) is not None


def test_a_visibility_set_after_stop_is_never_overwritten_by_a_late_renewal(aws: Any) -> None:
    """The consumer sets a failed record's retry delay after stopping the heartbeat: stop waits
    for a renewal in flight (here one that takes 0.5 s), so the delay is the last word."""
    send(aws)
    [message] = receive(aws)
    sqs = SlowRenewals(aws.sqs, delay_s=0.5)
    heartbeat = VisibilityHeartbeat(
        sqs=sqs,
        queue_url=aws.resources.queue_url,
        receipt_handles=[message["ReceiptHandle"]],
        visibility_s=VISIBILITY_S,
        interval_s=INTERVAL_S,
    ).start()
    assert sqs.started.wait(5)
    heartbeat.stop()
    aws.sqs.change_message_visibility(
        QueueUrl=aws.resources.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=30
    )
    assert receivable_within(aws, VISIBILITY_S + 2) is None


def test_a_renewal_for_a_wrong_queue_is_logged_and_the_heartbeat_keeps_going(aws: Any) -> None:
    send(aws)
    [message] = receive(aws)
    wrong = aws.resources.queue_url.replace(".fifo", "-gone.fifo")
    with (
        capture_logs() as logs,
        VisibilityHeartbeat(
            sqs=aws.sqs,
            queue_url=wrong,
            receipt_handles=[message["ReceiptHandle"]],
            visibility_s=VISIBILITY_S,
            interval_s=0.2,
        ),
    ):
        time.sleep(0.7)
    failures = [e for e in logs if e["event"] == "visibility_not_renewed"]
    assert len(failures) >= 2, logs  # tried again on schedule after the first failure
    assert failures[0]["log_level"] == "warning" and failures[0]["error"] == "QueueDoesNotExist"


def test_an_entry_sqs_refuses_is_dropped_and_the_others_are_still_renewed(aws: Any) -> None:
    """A handle SQS no longer knows (the record was deleted, or received again) is refused in
    the batch's answer: that entry is let go; the record beside it stays hidden."""
    send(aws)
    [message] = receive(aws, VisibilityTimeout=1)
    sqs = RecordingRenewals(aws.sqs)
    with (
        capture_logs() as logs,
        VisibilityHeartbeat(
            sqs=sqs,
            queue_url=aws.resources.queue_url,
            receipt_handles=["not-a-receipt-handle", message["ReceiptHandle"]],
            visibility_s=VISIBILITY_S,
            interval_s=INTERVAL_S,
        ),
    ):
        assert receivable_within(aws, 2 * VISIBILITY_S) is None
    assert [e["error_code"] for e in logs if e["event"] == "visibility_renewal_refused"] == [
        "ReceiptHandleIsInvalid"
    ]
    first, *later = sqs.entries
    assert len(first) == 2 and later and all(len(entries) == 1 for entries in later)


def test_a_renewal_is_one_request_per_ten_records(aws: Any) -> None:
    for n in range(12):
        send(aws, f"m{n}")
    handles = [m["ReceiptHandle"] for m in receive(aws) + receive(aws)]
    assert len(handles) == 12
    sqs = RecordingRenewals(aws.sqs)
    heartbeat = VisibilityHeartbeat(
        sqs=sqs,
        queue_url=aws.resources.queue_url,
        receipt_handles=handles,
        visibility_s=VISIBILITY_S,
        interval_s=60,
    ).start()
    assert sqs.answered.wait(5)
    heartbeat.stop()
    assert [len(entries) for entries in sqs.entries] == [10, 2]
    assert {e["VisibilityTimeout"] for entries in sqs.entries for e in entries} == {VISIBILITY_S}


def test_nothing_is_renewed_without_records_handles_or_a_queue(aws: Any) -> None:
    sqs = RecordingRenewals(aws.sqs)
    for queue_url, handles in ((aws.resources.queue_url, []), ("", ["rh"])):
        with VisibilityHeartbeat(sqs=sqs, queue_url=queue_url, receipt_handles=handles, interval_s=0.01):
            time.sleep(0.05)
    assert sqs.entries == []
    event = {"Records": [{"messageId": "a", "receiptHandle": "rh-a"}, {"messageId": "b"}, "junk"]}
    assert receipt_handles(event) == ["rh-a"]


def test_production_values_leave_two_failed_renewals_before_a_record_can_reappear() -> None:
    """Two renewals in a row may fail; the third still lands before the last good one's
    visibility ends, with room for that request's own timeouts and retry."""
    config = heartbeat_client_config()
    attempts = config.retries["total_max_attempts"]
    worst_request_s = attempts * (config.connect_timeout + config.read_timeout)
    assert 3 * HEARTBEAT_INTERVAL_S + worst_request_s < HEARTBEAT_VISIBILITY_S
    assert HEARTBEAT_VISIBILITY_S <= 180  # a dead consumer's record is back within 3 minutes


class RecordingRenewals:
    """The real client, with each renewal's entries recorded."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.entries: list[list[dict[str, Any]]] = []
        self.answered = threading.Event()

    def change_message_visibility_batch(self, **kwargs: Any) -> Any:
        self.entries.append(list(kwargs["Entries"]))
        answer = self._sqs.change_message_visibility_batch(**kwargs)
        if len(self.entries) >= 2:
            self.answered.set()
        return answer


class SlowRenewals:
    """The real client, each renewal reaching SQS ``delay_s`` after it was asked for."""

    def __init__(self, sqs: Any, *, delay_s: float) -> None:
        self._sqs = sqs
        self._delay_s = delay_s
        self.started = threading.Event()

    def change_message_visibility_batch(self, **kwargs: Any) -> Any:
        self.started.set()
        time.sleep(self._delay_s)
        return self._sqs.change_message_visibility_batch(**kwargs)
