"""[H] Two live deliveries of one record (a visibility timeout shorter than a slow send, or an
operator's redrive while a consumer still runs) send each chunk once: a chunk is claimed with
a conditional write before it is sent, not only recorded after."""

from __future__ import annotations

import threading
import time

from agentbot_testing.telegram_support import long_markdown, update
from local_stack import sqs_lambda_event
from session_core import DynamoTable, SessionKey
from sqs_consumer import html_to_plain, render_reply
from telegram_core import DeliveryClaims, DeliveryLog


def test_two_live_deliveries_of_one_record_send_each_chunk_once(stack) -> None:
    expected = [html_to_plain(c) for c in render_reply(long_markdown(10000))]
    assert len(expected) >= 3

    def slow_sends(method: str, params: dict) -> None:
        if method == "sendMessage":
            time.sleep(0.4)  # a slow send: the other delivery catches up meanwhile

    stack.telegram.on_call = slow_sends
    stack.post(update(8801, text="long:10000"))
    messages = stack.receive()
    event = sqs_lambda_event(
        messages, queue_arn=stack.aws.resources.queue_arn, region=stack.aws.sqs.meta.region_name
    )
    responses: list[dict] = []
    workers = [
        threading.Thread(target=lambda: responses.append(stack.consumer().handle_batch(event)))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    texts = [m["text"] for m in stack.replies()]
    assert texts == expected  # every chunk once, in order
    assert len(stack.runs()) == 1
    # The delivery that found a chunk being sent waited for it instead of sending it again.
    assert responses == [{"batchItemFailures": []}] * 2


def test_a_claim_expires_so_a_delivery_that_died_before_sending_never_blocks_the_answer(aws) -> None:
    now = [1000.0]
    records = DynamoTable(dynamodb=aws.dynamodb, table=aws.resources.table, clock=lambda: now[0])
    claims = DeliveryClaims(records, hold_s=120)
    key = SessionKey.parse("default/77/0")
    assert claims.claim(key, 5, 0, claimant="a") == "claimed"
    assert claims.claim(key, 5, 0, claimant="a") == "claimed"  # its own claim again
    assert claims.claim(key, 5, 0, claimant="b") == "held"
    now[0] += 121
    assert claims.claim(key, 5, 0, claimant="b") == "claimed"
    DeliveryLog(records).record_delivered_chunk(key, 5, 0, 4242)
    assert claims.claim(key, 5, 0, claimant="c") == "sent"
    assert claims.claim(key, 5, 1, claimant="c") == "claimed"
    claims.release(key, 5, 1, claimant="d")  # not d's claim: it stays
    assert claims.claim(key, 5, 1, claimant="e") == "held"
    claims.release(key, 5, 1, claimant="c")  # c's send failed: nothing went out
    assert claims.claim(key, 5, 1, claimant="e") == "claimed"
