"""The whole Telegram path with Lambda-shaped parts: the consumer runs as its own
awslambdaric process behind the local Lambda runtime, fed by the SQS event source."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
from agentbot_testing.telegram_stack import (
    consumer_event_source,
    consumer_function,
    telegram_stack,
    wait_until,
)
from agentbot_testing.telegram_support import long_markdown, update
from local_stack import TelegramFault
from sqs_consumer import DELIVERY_RESERVE_S, html_to_plain, render_reply

pytestmark = pytest.mark.slow

CONSUMER_TIMEOUT_S = 60


@pytest.fixture
def pipeline(aws, tmp_path, monkeypatch):
    with (
        telegram_stack(aws, tmp_path, monkeypatch) as stack,
        consumer_function(stack, timeout_s=CONSUMER_TIMEOUT_S) as consumer_lambda,
    ):
        source = consumer_event_source(stack, consumer_lambda, pollers=2, crash_retry_delay_s=1)
        stack.consumer_lambda = consumer_lambda
        source.start()
        try:
            yield stack
        finally:
            source.stop()


def test_two_chats_run_in_parallel_each_in_its_own_order(pipeline) -> None:
    for i in range(2):
        pipeline.post(update(300 + i, chat_id=701, user_id=701, text=f"sleep:1.5 a{i}"))
        pipeline.post(update(310 + i, chat_id=702, user_id=702, text=f"sleep:1.5 b{i}"))
    assert wait_until(lambda: len(pipeline.replies()) == 4, timeout_s=40)
    runs = pipeline.runs()
    by_chat = {
        key: [r for r in runs if r["session_key"] == key] for key in ("default/701/0", "default/702/0")
    }
    for chat_runs in by_chat.values():
        assert [r["prompt"][-2:] for r in chat_runs] in (["a0", "a1"], ["b0", "b1"])
        assert chat_runs[0]["ended"] <= chat_runs[1]["started"]  # one at a time within a chat
    a, b = by_chat["default/701/0"], by_chat["default/702/0"]
    overlaps = [x for x in a for y in b if x["started"] < y["ended"] and y["started"] < x["ended"]]
    assert overlaps, "the two chats never ran at the same time"
    assert [m["text"] for m in pipeline.replies(701)] == [
        "Answer to: sleep:1.5 a0",
        "Answer to: sleep:1.5 a1",
    ]


def test_runtime_deadline_comes_from_the_consumers_lambda_context(pipeline) -> None:
    """The consumer function runs with a 60 s timeout here: the runtime must be told to
    finish while the consumer still has its delivery reserve left."""
    posted_ms = time.time() * 1000
    pipeline.post(update(330, text="hi"))
    assert wait_until(lambda: len(pipeline.replies()) == 1, timeout_s=30)
    [run] = pipeline.runs()
    latest = run["started"] * 1000 + (CONSUMER_TIMEOUT_S - DELIVERY_RESERVE_S) * 1000
    assert posted_ms < run["deadline_epoch_ms"] <= latest


@pytest.mark.parametrize("kill_at_send", [1, 3], ids=["after_turn_before_delivery", "mid_delivery"])
def test_consumer_killed_then_retried_sends_each_chunk_once_and_runs_the_model_once(
    pipeline, kill_at_send
) -> None:
    expected = [html_to_plain(c) for c in render_reply(long_markdown(10000))]
    attempts = []

    def kill_consumer(method: str, params: dict) -> None:
        if method != "sendMessage":
            return
        attempts.append(params)
        if len(attempts) == kill_at_send:
            for pid in pipeline.consumer_lambda.process_ids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            pipeline.telegram.inject("sendMessage", TelegramFault.server_error(502))  # this one never lands

    pipeline.telegram.on_call = kill_consumer
    pipeline.post(update(320, text="long:10000"))
    assert wait_until(lambda: len(pipeline.replies()) >= len(expected), timeout_s=40)
    texts = [m["text"] for m in pipeline.replies()]
    assert texts == expected  # every chunk once, in order
    assert len(pipeline.runs()) == 1  # the retry replayed the recorded turn
    assert len(attempts) == len(expected) + 1  # only the interrupted send was repeated
