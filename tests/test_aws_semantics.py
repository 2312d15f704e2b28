"""What the local SQS and S3 of this run do where AWS's semantics matter to the stack.

Each test runs on the backend the suite uses (moto, or LocalStack for S3 and SQS; .ci/run uses
LocalStack) against the queue and bucket provisioned for it, and asserts what that backend was
measured to do: the README's table "Where LocalStack and moto differ" is these results. Where a
backend departs from AWS the expectation names the backend, so a moto or LocalStack upgrade that
changes the behaviour fails here and the table is corrected with it.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from botocore.exceptions import ClientError
from local_stack import MAX_RECEIVE_COUNT


def send(aws: Any, body: str, *, dedup: str, group: str = "chat") -> None:
    aws.sqs.send_message(
        QueueUrl=aws.resources.queue_url,
        MessageBody=body,
        MessageGroupId=group,
        MessageDeduplicationId=dedup,
    )


def receive(client: Any, queue_url: str, *, wait_s: int = 0, **options: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = client.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=wait_s,
        AttributeNames=["ApproximateReceiveCount"],
        **options,
    ).get("Messages", [])
    return messages


def bodies(messages: list[dict[str, Any]]) -> list[str]:
    return [m["Body"] for m in messages]


def test_fifo_dedup_id_is_refused_for_the_window_even_after_the_first_copy_is_deleted(aws) -> None:
    queue = aws.resources.queue_url
    send(aws, "first", dedup="update-1")
    send(aws, "retry while queued", dedup="update-1")
    [first] = receive(aws.sqs, queue)
    assert first["Body"] == "first"
    aws.sqs.delete_message(QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"])
    send(aws, "retry after delete", dedup="update-1")
    # SQS keeps a deduplication id for 5 minutes from the first send; moto forgets it with the
    # message. The producer's durable mark in DynamoDB is what stops Telegram's redeliveries.
    expected = {"moto": ["retry after delete"], "localstack": []}[aws.backend]
    assert bodies(receive(aws.sqs, queue)) == expected


def test_fifo_group_waits_while_its_message_is_in_flight(aws) -> None:
    queue = aws.resources.queue_url
    send(aws, "turn 1", dedup="1")
    send(aws, "turn 2", dedup="2")
    send(aws, "other chat", dedup="3", group="other")
    [turn_1] = aws.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"]
    assert turn_1["Body"] == "turn 1"
    assert bodies(receive(aws.sqs, queue)) == ["other chat"]
    aws.sqs.delete_message(QueueUrl=queue, ReceiptHandle=turn_1["ReceiptHandle"])
    assert bodies(receive(aws.sqs, queue)) == ["turn 2"]


def test_two_waiting_long_polls_and_the_next_message_of_a_busy_group(aws) -> None:
    """Two consumers long-poll an empty queue; one gets a chat's message, then the chat's next
    message arrives while the first is in flight. SQS holds it back (one turn of a chat at a
    time); moto hands it to the other waiting poll, because a long poll looks at which groups are
    busy only when it starts. The local SQS event source receives one call at a time for this."""
    queue = aws.resources.queue_url
    pollers = [aws.client("sqs") for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        polls = [pool.submit(receive, client, queue, wait_s=4) for client in pollers]
        time.sleep(1.0)  # both requests are waiting in the server before the first message
        send(aws, "turn 1", dedup="1")
        done, waiting = wait(polls, timeout=10, return_when=FIRST_COMPLETED)
        assert [bodies(f.result()) for f in done] == [["turn 1"]] and len(waiting) == 1
        send(aws, "turn 2", dedup="2")
        [other] = waiting
        handed_out = bodies(other.result(timeout=10))
    expected = {"moto": ["turn 2"], "localstack": []}[aws.backend]
    assert handed_out == expected


def test_visibility_timeout_hides_a_received_message_then_returns_it_counted(aws) -> None:
    queue = aws.resources.queue_url
    send(aws, "turn", dedup="1")
    [first] = receive(aws.sqs, queue, VisibilityTimeout=1)
    received_at = time.monotonic()
    assert receive(aws.sqs, queue) == []
    again: list[dict[str, Any]] = []
    while not again and time.monotonic() - received_at < 6:
        again = receive(aws.sqs, queue, VisibilityTimeout=30)
    back_after_s = time.monotonic() - received_at
    # moto: after 1.0-1.1 s; LocalStack checks about once a second: after 1.3-2.0 s
    assert 0.9 <= back_after_s <= 4.0, back_after_s  # slack for a loaded machine
    assert bodies(again) == ["turn"] and again[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    assert again[0]["ReceiptHandle"] != first["ReceiptHandle"]
    aws.sqs.change_message_visibility(
        QueueUrl=queue, ReceiptHandle=again[0]["ReceiptHandle"], VisibilityTimeout=0
    )
    assert bodies(receive(aws.sqs, queue, VisibilityTimeout=30)) == ["turn"]


def test_a_message_received_max_receive_count_times_moves_to_the_dead_letter_queue(aws) -> None:
    queue, dlq = aws.resources.queue_url, aws.resources.dlq_url
    send(aws, "poison", dedup="1")
    counts = [
        m["Attributes"]["ApproximateReceiveCount"]
        for _ in range(MAX_RECEIVE_COUNT)
        for m in receive(aws.sqs, queue, VisibilityTimeout=0)
    ]
    assert counts == [str(n) for n in range(1, MAX_RECEIVE_COUNT + 1)]
    assert receive(aws.sqs, queue) == []
    assert bodies(receive(aws.sqs, dlq)) == ["poison"]


def put(aws: Any, key: str, body: bytes, **precondition: str) -> str:
    """PutObject with a precondition: the new ETag, or the error code and HTTP status."""
    try:
        return str(aws.s3.put_object(Bucket=aws.resources.bucket, Key=key, Body=body, **precondition)["ETag"])
    except ClientError as error:
        return f"{error.response['ResponseMetadata']['HTTPStatusCode']} {error.response['Error']['Code']}"


def test_s3_put_preconditions_refuse_a_lost_race_and_keep_the_object(aws) -> None:
    # moto and LocalStack 4.14 both behave as S3 documents
    created = put(aws, "head", b"v1", IfNoneMatch="*")
    assert created.startswith('"')
    assert put(aws, "head", b"v1 again", IfNoneMatch="*") == "412 PreconditionFailed"
    stale = '"0123456789abcdef0123456789abcdef"'
    assert put(aws, "head", b"v2 from a stale reader", IfMatch=stale) == "412 PreconditionFailed"
    updated = put(aws, "head", b"v2", IfMatch=created)
    assert updated.startswith('"') and updated != created
    assert put(aws, "never-written", b"x", IfMatch=created) == "404 NoSuchKey"
    stored = aws.s3.get_object(Bucket=aws.resources.bucket, Key="head")
    assert stored["Body"].read() == b"v2" and stored["ETag"] == updated
