"""The consumer's visibility heartbeat in its real handler path: `sqs_consumer.handler.handle`
as its own awslambdaric process behind the local Lambda runtime, with production values. A
record received for 3 s only stays hidden through a 6-second turn: the heartbeat's first
renewal (180 s) took over from the receive as soon as the batch arrived."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from agentbot_testing.telegram_stack import (
    CONSUMER_FUNCTION,
    consumer_function,
    consumer_invoker,
    telegram_stack,
)
from agentbot_testing.telegram_support import update
from local_stack import sqs_lambda_event

pytestmark = pytest.mark.slow


def test_the_real_consumer_keeps_its_batch_hidden_while_its_turn_runs(aws, tmp_path, monkeypatch) -> None:
    with (
        telegram_stack(aws, tmp_path, monkeypatch) as stack,
        consumer_function(stack) as consumer_lambda,
    ):
        functions = consumer_invoker(consumer_lambda)

        def invoke(event: dict[str, Any]) -> dict[str, Any]:
            response = functions.invoke(FunctionName=CONSUMER_FUNCTION, Payload=json.dumps(event).encode())
            assert not response.get("FunctionError"), response
            answer: dict[str, Any] = json.loads(response["Payload"].read())
            return answer

        # Warm: the container's consumer is built before the clock below starts.
        assert invoke({"Records": []}) == {"batchItemFailures": []}
        assert stack.post(update(350, text="sleep:6 take your time")) == 200
        [message] = aws.sqs.receive_message(
            QueueUrl=aws.resources.queue_url,
            VisibilityTimeout=3,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )["Messages"]
        event = sqs_lambda_event(
            [message], queue_arn=aws.resources.queue_arn, region=aws.sqs.meta.region_name
        )
        answers: list[dict[str, Any]] = []
        invocation = threading.Thread(target=lambda: answers.append(invoke(event)))
        started = time.monotonic()
        invocation.start()
        seen: list[dict[str, Any]] = []
        while invocation.is_alive():
            seen += aws.sqs.receive_message(
                QueueUrl=aws.resources.queue_url, WaitTimeSeconds=0, VisibilityTimeout=60
            ).get("Messages", [])
            time.sleep(0.2)
        invocation.join()
        assert time.monotonic() - started > 5, "the turn ended before the receive's 3 s ran out"
        assert seen == [], "a second receiver got the record while its consumer was still working"
        assert answers == [{"batchItemFailures": []}]
        assert [m["text"] for m in stack.replies()] == ["Answer to: sleep:6 take your time"]
