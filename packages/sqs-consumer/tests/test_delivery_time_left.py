"""Delivery within the invocation's time, called directly against a Bot API server on 127.0.0.1
and the delivery records in the test stack's table (moto over HTTP, real boto3): a part begun
too late to be answered is one Telegram may take after all (and the record's retry sends it
again), and a wait for another delivery's claim must end with the time for delivery."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import msgspec
import pytest
from local_stack import TEST_BOT_TOKEN, LocalTelegram, TelegramFault
from session_core import DynamoTable, SessionKey, StagedAttachment
from sqs_consumer import DeferredError, Delivery, DeliveryFailedError
from sqs_consumer._timing import DELIVERY_PART_MIN_S
from telegram_core import BotApi, DeliveryClaims, DeliveryLog, InboundMessage

CHAT = 91
KEY = SessionKey.parse(f"default/{CHAT}/0")
MSG = InboundMessage(
    update_id=61, session_key=KEY.canonical, kind="message", chat_id=CHAT, chat_type="private", message_id=4
)
END_RESERVE_S = 5.0  # what delivery leaves of the invocation (its outcome's time)


def delivery(aws: Any, telegram: LocalTelegram, http: httpx.Client) -> Delivery:
    records = DynamoTable(dynamodb=aws.dynamodb, table=aws.resources.table)
    bot = BotApi(http=http, token=TEST_BOT_TOKEN, base_url=telegram.base_url, backoff_s=0.01)
    return Delivery(
        bot=bot, registry=DeliveryLog(records), claims=DeliveryClaims(records), end_reserve_s=END_RESERVE_S
    )


def invocation_of(seconds: float) -> tuple[list[float], Any]:
    """An invocation's end (a list, for a test to move it) and its remaining-time function."""
    ends = [time.monotonic() + seconds]
    return ends, lambda: int((ends[0] - time.monotonic()) * 1000)


def test_a_part_with_too_little_time_for_an_answer_is_left_to_the_retry_not_sent_twice(
    aws: Any, telegram: LocalTelegram, http: httpx.Client
) -> None:
    """A healthy Telegram takes a second to answer; the second part would be begun with half
    of one left. Cut by the time bound, its answer lost, it reached the chat all the same, and
    the record's retry would send it again."""
    parts = ["one", "two", "three"]
    ends, remaining = invocation_of(60)

    begun: list[str] = []

    def slow_telegram(method: str, params: dict) -> None:
        if method == "sendMessage":
            begun.append(params["text"])
            if not telegram.sent_messages(CHAT):  # the first part: the invocation's time runs on
                ends[0] = time.monotonic() + END_RESERVE_S + 1.5
            time.sleep(1.0)

    telegram.on_call = slow_telegram
    with pytest.raises(DeliveryFailedError) as cut:
        delivery(aws, telegram, http).deliver(MSG, KEY, parts, remaining=remaining)
    assert cut.value.retryable  # the record is retried for the rest
    # Telegram answers every send it got, a cut one too: the chat has it.
    assert telegram.wait_for(lambda t: len(t.sent_messages(CHAT)) == len(begun), timeout_s=30)
    telegram.on_call = None
    _, retry_remaining = invocation_of(60)
    delivery(aws, telegram, http).deliver(MSG, KEY, parts, remaining=retry_remaining)
    assert [m["text"] for m in telegram.sent_messages(CHAT)] == parts  # each once, in order


def test_a_part_another_delivery_holds_is_not_waited_for_past_the_time_for_delivery(
    aws: Any, telegram: LocalTelegram, http: httpx.Client
) -> None:
    """The other live delivery's claim lasts longer than this invocation's time: waited for to
    the end, the record's outcome (its retry, its dead letter) would go unsaid."""
    records = DynamoTable(dynamodb=aws.dynamodb, table=aws.resources.table)
    assert DeliveryClaims(records, hold_s=120).claim(KEY, MSG.update_id, 0, claimant="other") == "claimed"
    _, remaining = invocation_of(END_RESERVE_S + 8)
    with pytest.raises((DeferredError, DeliveryFailedError)) as put_off:
        delivery(aws, telegram, http).deliver(MSG, KEY, ["hi"], remaining=remaining)
    assert put_off.value.retryable and put_off.value.deferrable  # retried, never dead-lettered
    assert remaining() > 0, "the delivery outlived the invocation"
    assert telegram.sent_messages(CHAT) == []


def test_a_held_upload_notice_leaves_the_file_its_time_not_an_upload_cut_short(
    aws: Any, telegram: LocalTelegram
) -> None:
    """ "sending a file…" is best effort; Telegram holds it. Were it given all the time left,
    the file would then go with none: cut short while Telegram takes it, and named as one that
    may not have arrived although it did."""
    files = [
        StagedAttachment(s3_key="outbox/report.txt", file_name="report.txt", mime_type="text/plain", size=6)
    ]
    released = threading.Event()  # set at the end: until then Telegram holds the notice

    def holds_the_notice(method: str, params: dict) -> None:
        if method == "sendChatAction":
            released.wait(60)
        elif method == "sendDocument":
            time.sleep(2.0)  # a healthy Telegram takes a while over a file

    telegram.on_call = holds_the_notice
    _, remaining = invocation_of(END_RESERVE_S + DELIVERY_PART_MIN_S + 0.8)
    with httpx.Client(timeout=30) as http:
        try:
            unsent = delivery(aws, telegram, http).deliver_files(
                MSG, KEY, files, first_index=1, read=lambda file: b"report", remaining=remaining
            )
        finally:
            released.set()
    assert unsent == []  # confirmed: not named as perhaps missing
    assert [f.file_name for f in telegram.sent_files(CHAT)] == ["report.txt"]


def eats_the_time_then_holds(first: str, then: str, ends: list[float], held: threading.Event) -> Any:
    """A Telegram that takes a second over the first ``first`` call, by when the invocation has
    1.5 s left of its time for delivery, then holds each ``then`` call 1.5 s (``held`` set
    once it served one): begun, such a send is cut and Telegram takes it all the same."""
    seen: list[str] = []

    def on_call(method: str, params: dict) -> None:
        if method == first and first not in seen:
            seen.append(method)
            ends[0] = time.monotonic() + END_RESERVE_S + 1.5
            time.sleep(1.0)
        elif method == then:
            time.sleep(1.5)
            held.set()

    return on_call


def test_a_group_that_became_a_supergroup_gets_the_part_once_when_time_ran_out_at_the_move(
    aws: Any, telegram: LocalTelegram, http: httpx.Client
) -> None:
    """The send to the supergroup comes after the refused one: begun with no time left, it is
    cut while Telegram takes it, and the record's retry sends it again."""
    group = msgspec.structs.replace(MSG, chat_id=-CHAT, chat_type="group", update_id=62)
    supergroup = -100_000_000_091
    ends, remaining = invocation_of(60)
    held = threading.Event()
    telegram.on_call = eats_the_time_then_holds("sendMessage", "sendMessage", ends, held)
    telegram.inject("sendMessage", TelegramFault.group_upgraded(supergroup))
    with pytest.raises(DeliveryFailedError) as cut:
        delivery(aws, telegram, http).deliver(group, KEY, ["hello"], remaining=remaining)
    assert cut.value.retryable
    held.wait(5)  # a send held by Telegram, if one was begun, lands meanwhile
    telegram.on_call = None
    telegram.inject("sendMessage", TelegramFault.group_upgraded(supergroup))  # still a supergroup
    _, retry_remaining = invocation_of(60)
    delivery(aws, telegram, http).deliver(group, KEY, ["hello"], remaining=retry_remaining)
    assert [m["text"] for m in telegram.sent_messages(supergroup)] == ["hello"]


def test_a_text_telegram_counts_as_too_long_does_not_begin_its_second_half_without_time(
    aws: Any, telegram: LocalTelegram, http: httpx.Client
) -> None:
    """The halves of a text refused as too long are sends of their own: the second, begun with
    no time left, is cut while Telegram takes it, and the record's retry sends it again."""
    text = "first half of the answer. second half of the answer."
    ends, remaining = invocation_of(60)
    held = threading.Event()
    halves: list[str] = []

    def on_call(method: str, params: dict) -> None:
        if method == "sendMessage" and "parse_mode" not in params:  # a plain half
            halves.append(params["text"])
            if len(halves) == 1:
                ends[0] = time.monotonic() + END_RESERVE_S + 1.5
                time.sleep(1.0)
            else:
                time.sleep(1.5)
                held.set()

    telegram.on_call = on_call
    telegram.inject("sendMessage", TelegramFault.message_too_long())
    with pytest.raises(DeliveryFailedError) as cut:
        delivery(aws, telegram, http).deliver(MSG, KEY, [text], remaining=remaining)
    assert cut.value.retryable
    held.wait(5)
    telegram.on_call = None
    telegram.inject("sendMessage", TelegramFault.message_too_long())
    _, retry_remaining = invocation_of(60)
    delivery(aws, telegram, http).deliver(MSG, KEY, [text], remaining=retry_remaining)
    # Each half once: the first half, recorded as it went, is not sent again by the retry.
    shown = [m["text"] for m in telegram.sent_messages(CHAT)]
    assert len(shown) == 2 and "".join(shown) == text, shown


def test_a_text_telegram_counts_as_too_long_is_not_half_repeated_when_telegram_fails_after_its_first_half(
    aws: Any, telegram: LocalTelegram, http: httpx.Client
) -> None:
    """Telegram took the first half and then failed (a 5xx through every retry of the client):
    the record's retry sends the second half only, after the first, quoting nothing."""
    text = "first half of the answer.\nsecond half of the answer."
    plain_sends: list[dict] = []

    def fails_at_the_second_half(method: str, params: dict) -> None:
        if method == "sendMessage" and "parse_mode" not in params:
            plain_sends.append(params)
            if len(plain_sends) == 2:
                telegram.inject("sendMessage", TelegramFault.server_error(), times=5)

    telegram.on_call = fails_at_the_second_half
    telegram.inject("sendMessage", TelegramFault.message_too_long())
    with pytest.raises(DeliveryFailedError) as failed:
        delivery(aws, telegram, http).deliver(MSG, KEY, [text, "after it"])
    assert failed.value.retryable
    telegram.on_call = None
    telegram.inject("sendMessage", TelegramFault.message_too_long())  # still too long
    delivery(aws, telegram, http).deliver(MSG, KEY, [text, "after it"])
    shown = telegram.sent_messages(CHAT)
    assert [m["text"] for m in shown] == [
        "first half of the answer.\n",
        "second half of the answer.",
        "after it",
    ]
    assert [m.get("reply_to_message") is not None for m in shown] == [True, False, False]


def test_a_refused_photo_is_not_begun_again_as_a_document_without_time_for_it(
    aws: Any, telegram: LocalTelegram, http: httpx.Client
) -> None:
    """The document after a refused photo is a send of its own: begun with no time left, it is
    cut while Telegram takes it, and the user is told it may be missing although it arrived."""
    files = [
        StagedAttachment(s3_key="outbox/chart.png", file_name="chart.png", mime_type="image/png", size=5)
    ]
    ends, remaining = invocation_of(60)
    held = threading.Event()
    telegram.on_call = eats_the_time_then_holds("sendPhoto", "sendDocument", ends, held)
    telegram.inject("sendPhoto", TelegramFault.photo_invalid_dimensions())
    with pytest.raises(DeliveryFailedError) as cut:
        delivery(aws, telegram, http).deliver_files(
            MSG, KEY, files, first_index=1, read=lambda file: b"chart", remaining=remaining
        )
    assert cut.value.retryable
    held.wait(5)
    telegram.on_call = None
    telegram.inject("sendPhoto", TelegramFault.photo_invalid_dimensions())
    _, retry_remaining = invocation_of(60)
    unsent = delivery(aws, telegram, http).deliver_files(
        MSG, KEY, files, first_index=1, read=lambda file: b"chart", remaining=retry_remaining
    )
    assert unsent == []  # sent, and said to be
    assert [f.file_name for f in telegram.sent_files(CHAT)] == ["chart.png"]


def test_a_send_whose_answer_trickles_in_ends_within_the_time_for_delivery(
    aws: Any, telegram: LocalTelegram
) -> None:
    """Every read of a trickling answer is quick, so no HTTP timeout ends the call: bounded by
    its phases only, it would hold the invocation past its end, the record's outcome unsaid."""
    telegram.inject("sendMessage", TelegramFault.served_then_trickled(25.0))
    _, remaining = invocation_of(END_RESERVE_S + DELIVERY_PART_MIN_S + 3)
    with httpx.Client(timeout=5) as http, pytest.raises(DeliveryFailedError) as cut:
        delivery(aws, telegram, http).deliver(MSG, KEY, ["hello"], remaining=remaining)
    assert cut.value.retryable  # the record is retried (the part may have gone: Telegram took it)
    assert remaining() > 0, "the send outlived the invocation"


class _SlowToConnectOnce(httpx.HTTPTransport):
    """A new connection that takes ``delay_s`` before a byte of the request goes (a lost DNS
    answer, a slow TCP and TLS handshake, each phase within its own timeout), once."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self._delay_s: float | None = delay_s

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        delay, self._delay_s = self._delay_s, None
        if delay is not None:
            time.sleep(delay)
        return super().handle_request(request)


def test_a_send_given_up_before_it_went_out_is_not_sent_after_all_beside_the_retrys(
    aws: Any, telegram: LocalTelegram
) -> None:
    """The time for delivery ran out while the call was still connecting: the caller stops
    waiting for it, but the call, left to itself, went on to send the part once connected, and
    the record's retry sent it too, so the chat read the answer twice."""
    _, remaining = invocation_of(END_RESERVE_S + DELIVERY_PART_MIN_S + 1)
    with httpx.Client(timeout=10, transport=_SlowToConnectOnce(DELIVERY_PART_MIN_S + 3)) as http:
        with pytest.raises(DeliveryFailedError) as cut:
            delivery(aws, telegram, http).deliver(MSG, KEY, ["hello"], remaining=remaining)
        assert cut.value.retryable
        _, retry_remaining = invocation_of(60)
        delivery(aws, telegram, http).deliver(MSG, KEY, ["hello"], remaining=retry_remaining)
        time.sleep(4)  # the given-up call's connection is made by now

    assert [m["text"] for m in telegram.sent_messages(CHAT)] == ["hello"]
