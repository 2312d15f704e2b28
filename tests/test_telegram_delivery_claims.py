"""[H] Two live deliveries of one record (a visibility timeout shorter than a slow send, or an
operator's redrive while a consumer still runs) send each chunk once: a chunk is claimed with
a conditional write before it is sent, not only recorded after."""

from __future__ import annotations

import threading
import time

import httpx
from agentbot_testing.telegram_support import long_markdown, update
from local_stack import TEST_BOT_TOKEN, TelegramFault, sqs_lambda_event
from session_core import DynamoTable, SessionKey, StagedAttachment, outbox_key
from sqs_consumer import Delivery, DeliveryFailedError, html_to_plain, render_reply
from telegram_core import BotApi, DeliveryClaims, DeliveryLog, InboundMessage


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


def test_a_file_whose_answer_was_lost_is_not_sent_again_by_the_other_live_delivery(stack) -> None:
    """The upload may have arrived: its chunk stays claimed until it is recorded, so the other
    delivery (waiting on that claim) finds it recorded instead of free to send a second time."""
    records = DynamoTable(dynamodb=stack.aws.dynamodb, table=stack.aws.resources.table)
    key = SessionKey.parse("default/77/0")
    msg = InboundMessage(
        update_id=31, session_key=key.canonical, kind="message", chat_id=77, chat_type="private", message_id=2
    )
    files = [
        StagedAttachment(s3_key=outbox_key(key, 31, name), file_name=name, mime_type="text/plain", size=0)
        for name in ("data.csv", "notes.txt")
    ]

    def read(file: StagedAttachment) -> bytes:
        return file.file_name.encode()

    http = httpx.Client(timeout=5)

    def delivery(claims: DeliveryClaims) -> Delivery:
        bot = BotApi(http=http, token=TEST_BOT_TOKEN, base_url=stack.telegram.base_url, backoff_s=0.01)
        return Delivery(bot=bot, registry=DeliveryLog(records), claims=claims)

    class OtherDeliveryCatchesUp(DeliveryClaims):
        """The other delivery, waiting on a chunk, claims it the moment it is given up."""

        def release(self, key: SessionKey, update_id: int, index: int, *, claimant: str) -> None:
            super().release(key, update_id, index, claimant=claimant)
            delivery(DeliveryClaims(records)).deliver_files(msg, key, files, first_index=1, read=read)

    stack.telegram.inject("sendDocument", TelegramFault.served_then_dropped())  # data.csv
    with http:
        delivery(OtherDeliveryCatchesUp(records)).deliver_files(msg, key, files, first_index=1, read=read)
        retried = delivery(DeliveryClaims(records)).deliver_files(msg, key, files, first_index=1, read=read)

    assert [f.file_name for f in stack.telegram.sent_files()] == ["data.csv", "notes.txt"]  # each once
    assert [(f.file_name, f.reason) for f in retried] == [("data.csv", "unconfirmed")]  # still named


def test_a_part_another_delivery_held_and_then_failed_to_send_is_not_counted_as_delivered(stack) -> None:
    """One delivery holds the text's claim while Telegram keeps it waiting, then refuses it for
    now; the other, waiting on that claim, then sends the part itself (refused too here). Neither
    counts the part as delivered: each failed delivery names it among what did not go (the
    text is judged lost), and the delivery record, which judges the files, shows nothing sent."""
    records = DynamoTable(dynamodb=stack.aws.dynamodb, table=stack.aws.resources.table)
    key = SessionKey.parse("default/77/0")
    msg = InboundMessage(
        update_id=32, session_key=key.canonical, kind="message", chat_id=77, chat_type="private", message_id=2
    )
    files = [
        StagedAttachment(s3_key=outbox_key(key, 32, "a.csv"), file_name="a.csv", mime_type="text/csv", size=0)
    ]

    def slow_then_refused(method: str, params: dict) -> None:
        time.sleep(0.5)  # the other delivery finds the part held meanwhile
        stack.telegram.inject(method, TelegramFault.retry_after_seconds(60))

    stack.telegram.on_call = slow_then_refused
    failures: list[DeliveryFailedError] = []
    http = httpx.Client(timeout=5)

    def deliver(part: str) -> None:
        bot = BotApi(http=http, token=TEST_BOT_TOKEN, base_url=stack.telegram.base_url, backoff_s=0.01)
        delivery = Delivery(
            bot=bot, registry=DeliveryLog(records), claims=DeliveryClaims(records), claim_poll_s=0.1
        )
        try:
            if part == "text":
                delivery.deliver(msg, key, ["<b>the answer</b>"])
            else:
                delivery.deliver_files(msg, key, files, first_index=1000, read=lambda _: b"a,b")
        except DeliveryFailedError as exc:
            failures.append(exc)

    with http:
        for part in ("text", "file"):
            workers = [threading.Thread(target=deliver, args=(part,)) for _ in range(2)]
            for worker in workers:
                worker.start()
                time.sleep(0.1)  # the first holds the claim when the second asks for it
            for worker in workers:
                worker.join(timeout=60)

    assert len(failures) == 4  # each delivery of each part failed: none skipped it as sent
    assert [len(stack.telegram.calls(m)) for m in ("sendMessage", "sendDocument")] == [2, 2]
    text_failures = [f for f in failures if f.chunk_index == 0]
    assert all(0 not in (f.delivered or {}) for f in text_failures) and len(text_failures) == 2
    # what the files' judgement reads: neither the text nor the file went
    assert DeliveryLog(records).delivered_chunks(key, 32) == {}
