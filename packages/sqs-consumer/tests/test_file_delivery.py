"""The files the agent sends, delivered directly: after the answer's text, each once, one in
memory at a time; a file gone from S3 or refused by Telegram is skipped, the others still go.
Against the local Bot API server, with in-memory delivery records; the outbox read against
the test S3."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from local_stack import TEST_BOT_TOKEN, LocalTelegram, TelegramFault
from session_core import SessionKey, StagedAttachment, outbox_key
from sqs_consumer import Delivery, DeliveryFailedError, read_outbox_file
from telegram_core import BotApi, InboundMessage

KEY = SessionKey.parse("default/-1005/7")
MSG = InboundMessage(
    update_id=21,
    session_key=KEY.canonical,
    kind="message",
    chat_id=-1005,
    chat_type="supergroup",
    message_id=3,
    thread_id=7,
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 100


class Records:
    def __init__(self) -> None:
        self.chunks: dict[tuple[int, int], int] = {}

    def delivered_chunks(self, key: SessionKey, update_id: int) -> dict[int, int]:
        return {index: mid for (uid, index), mid in self.chunks.items() if uid == update_id}

    def record_delivered_chunk(self, key: SessionKey, update_id: int, index: int, message_id: int) -> None:
        self.chunks[(update_id, index)] = message_id

    def notice_sent(self, key: SessionKey, update_id: int, kind: str) -> bool:
        return True


def staged(name: str, mime_type: str | None) -> StagedAttachment:
    return StagedAttachment(s3_key=outbox_key(KEY, 21, name), file_name=name, mime_type=mime_type, size=0)


FILES = [staged("chart.png", "image/png"), staged("data.csv", "text/csv"), staged("notes.txt", "text/plain")]
CONTENT = {"chart.png": PNG, "data.csv": b"a,b\n1,2\n", "notes.txt": b"remember"}


def delivery(telegram: LocalTelegram, records: Records) -> Delivery:
    bot = BotApi(
        http=httpx.Client(timeout=5), token=TEST_BOT_TOKEN, base_url=telegram.base_url, backoff_s=0.01
    )
    return Delivery(bot=bot, registry=records)


class Outbox:
    """Reads the scripted files, noting each read and each send it saw happen in between."""

    def __init__(self, telegram: LocalTelegram, gone: frozenset[str] = frozenset()) -> None:
        self.events: list[str] = []
        self.gone = gone
        telegram.on_call = lambda method, params: self.events.append(method)

    def __call__(self, file: StagedAttachment) -> bytes | None:
        self.events.append(f"read {file.file_name}")
        return None if file.file_name in self.gone else CONTENT[file.file_name]


def test_files_go_after_the_text_in_its_topic_each_once_and_read_one_at_a_time(telegram) -> None:
    records = Records()
    send, outbox = delivery(telegram, records), Outbox(telegram)
    send.deliver(MSG, KEY, ["the answer"])
    send.deliver_files(MSG, KEY, FILES, first_index=1, read=outbox)
    sent = telegram.sent_files(MSG.chat_id)
    assert [(f.method, f.file_name, f.content()) for f in sent] == [
        ("sendPhoto", "chart.png", PNG),
        ("sendDocument", "data.csv", b"a,b\n1,2\n"),
        ("sendDocument", "notes.txt", b"remember"),
    ]
    assert all(f.message["message_thread_id"] == 7 and "reply_to_message" not in f.message for f in sent)
    assert outbox.events[1:] == [  # "sending a photo/file…" shows while each uploads
        "read chart.png",
        "sendChatAction",
        "sendPhoto",
        "read data.csv",
        "sendChatAction",
        "sendDocument",
        "read notes.txt",
        "sendChatAction",
        "sendDocument",
    ]
    actions = [c.params["action"] for c in telegram.calls("sendChatAction")]
    assert actions == ["upload_photo", "upload_document", "upload_document"]
    ids = [m["message_id"] for m in telegram.sent_messages(MSG.chat_id)]
    assert records.delivered_chunks(KEY, 21) == dict(enumerate(ids))
    send.deliver(MSG, KEY, ["the answer"])  # a retry of the record sends and reads nothing again
    send.deliver_files(MSG, KEY, FILES, first_index=1, read=outbox)
    assert len(telegram.sent_messages()) == 4 and outbox.events.count("read data.csv") == 1


def test_without_text_the_first_file_quotes_the_message(telegram) -> None:
    delivery(telegram, Records()).deliver_files(
        MSG, KEY, FILES[1:2], first_index=0, read=Outbox(telegram), quote_first=True
    )
    [sent] = telegram.sent_files()
    assert sent.message["reply_to_message"]["message_id"] == 3


def test_without_text_a_first_file_gone_leaves_the_quote_to_the_next_one_across_retries(telegram) -> None:
    records = Records()
    send, outbox = delivery(telegram, records), Outbox(telegram, gone=frozenset({"chart.png"}))
    for _attempt in range(2):  # the record's first delivery, then its retry
        skipped = send.deliver_files(MSG, KEY, FILES, first_index=0, read=outbox, quote_first=True)
        assert [f.file_name for f in skipped] == ["chart.png"]
    sent = telegram.sent_files()
    assert [f.file_name for f in sent] == ["data.csv", "notes.txt"]
    assert [f.message.get("reply_to_message", {}).get("message_id") for f in sent] == [3, None]


def test_a_file_gone_or_refused_for_good_is_skipped_and_the_others_still_go(telegram) -> None:
    records = Records()
    send = delivery(telegram, records)
    telegram.inject("sendDocument", TelegramFault(400, "Bad Request: wrong file identifier"))
    skipped = send.deliver_files(
        MSG, KEY, FILES, first_index=1, read=Outbox(telegram, gone=frozenset({"chart.png"}))
    )
    [sent] = telegram.sent_files()
    assert sent.file_name == "notes.txt"
    assert [f.file_name for f in skipped] == ["chart.png", "data.csv"]  # for the answer to name
    assert list(records.delivered_chunks(KEY, 21)) == [3]  # nothing recorded for what did not go


def test_a_notice_has_its_own_place_and_goes_once(telegram) -> None:
    records = Records()
    send = delivery(telegram, records)
    for _attempt in range(2):  # the record's first delivery, then its retry
        send.deliver_notice(MSG, KEY, 1500, "(chart.png was not sent)")
    assert [m["text"] for m in telegram.sent_messages()] == ["(chart.png was not sent)"]
    assert list(records.delivered_chunks(KEY, 21)) == [1500]
    assert "reply_to_message" not in telegram.sent_messages()[0]


def test_a_notice_that_is_all_of_the_answer_quotes_the_message(telegram) -> None:
    delivery(telegram, Records()).deliver_notice(MSG, KEY, 1500, "(chart.png was not sent)", quote=True)
    [sent] = telegram.sent_messages()
    assert sent["reply_to_message"]["message_id"] == 3


def test_a_failure_telegram_may_recover_from_fails_the_delivery_to_be_retried(telegram) -> None:
    records = Records()
    send = delivery(telegram, records)
    # Telegram did not take it and asks for more patience than the client's (a retry of the record)
    telegram.inject("sendDocument", TelegramFault.retry_after_seconds(60))
    with pytest.raises(DeliveryFailedError) as failed:
        send.deliver_files(MSG, KEY, FILES, first_index=1, read=Outbox(telegram))
    assert failed.value.retryable and failed.value.deferrable and failed.value.chunk_index == 2
    send.deliver_files(MSG, KEY, FILES, first_index=1, read=Outbox(telegram))  # the record's retry
    assert [f.file_name for f in telegram.sent_files()] == ["chart.png", "data.csv", "notes.txt"]


@pytest.mark.parametrize(
    "fault", [TelegramFault.served_then_server_error(502), TelegramFault.server_error(500)]
)
def test_a_file_answered_with_a_5xx_is_named_and_never_sent_again_even_by_a_retry(
    telegram, fault: TelegramFault
) -> None:
    """Whether or not Telegram took it (it cannot be told from the answer), the user gets at
    most one copy and a note saying it may be missing."""
    records = Records()
    send = delivery(telegram, records)
    telegram.inject("sendDocument", fault)  # data.csv
    skipped = send.deliver_files(MSG, KEY, FILES, first_index=1, read=Outbox(telegram))
    retried = send.deliver_files(MSG, KEY, FILES, first_index=1, read=Outbox(telegram))  # the record's retry
    copies = [f.file_name for f in telegram.sent_files()].count("data.csv")
    assert copies == (1 if fault.served_first else 0) and len(telegram.calls("sendDocument")) == 2
    assert [f.file_name for f in telegram.sent_files()][-1] == "notes.txt"  # the others still went
    assert [(f.file_name, f.reason) for f in skipped] == [("data.csv", "unconfirmed")]
    assert [(f.file_name, f.reason) for f in retried] == [("data.csv", "unconfirmed")]


def test_a_file_whose_answer_was_lost_is_named_and_never_sent_again_even_by_a_retry(telegram) -> None:
    records = Records()
    send = delivery(telegram, records)
    telegram.inject("sendDocument", TelegramFault.served_then_dropped())  # data.csv
    telegram.inject("sendDocument", TelegramFault.retry_after_seconds(60))  # then notes.txt
    with pytest.raises(DeliveryFailedError):
        send.deliver_files(MSG, KEY, FILES, first_index=1, read=Outbox(telegram))
    retried = send.deliver_files(MSG, KEY, FILES, first_index=1, read=Outbox(telegram))  # the record's retry
    assert [f.file_name for f in telegram.sent_files()] == ["chart.png", "data.csv", "notes.txt"]
    assert [(f.file_name, f.reason) for f in retried] == [("data.csv", "unconfirmed")]  # still to be named


def test_a_chat_the_bot_cannot_post_in_fails_the_delivery_as_unreachable(telegram) -> None:
    telegram.inject("sendPhoto", TelegramFault(400, "Bad Request: TOPIC_CLOSED"))
    with pytest.raises(DeliveryFailedError) as failed:
        delivery(telegram, Records()).deliver_files(
            MSG, KEY, FILES, first_index=0, read=Outbox(telegram), quote_first=True
        )
    assert failed.value.chat_unreachable and telegram.sent_files() == []


# What Telegram answers a bot a group's permissions keep from sending a kind of file (an admin
# turned off photos or files for members); its text still goes.
NO_PHOTOS = TelegramFault(400, "Bad Request: not enough rights to send photos to the chat")
NO_DOCUMENTS = TelegramFault(400, "Bad Request: not enough rights to send documents to the chat")


def test_a_photo_the_group_does_not_allow_goes_as_a_document(telegram) -> None:
    telegram.inject("sendPhoto", NO_PHOTOS)
    skipped = delivery(telegram, Records()).deliver_files(
        MSG, KEY, FILES, first_index=1, read=Outbox(telegram)
    )
    assert skipped == []
    sent = [(f.method, f.file_name) for f in telegram.sent_files()]
    assert sent == [("sendDocument", name) for name in ("chart.png", "data.csv", "notes.txt")]


def test_files_the_group_does_not_allow_are_named_not_taken_for_the_chat_shutting_the_bot_out(
    telegram,
) -> None:
    """Its text went: the user is told which files did not go and why, and the record is not
    dropped as if the bot could no longer post there."""
    telegram.inject("sendPhoto", NO_PHOTOS)
    telegram.inject("sendDocument", NO_DOCUMENTS, times=len(FILES))
    records = Records()
    skipped = delivery(telegram, records).deliver_files(MSG, KEY, FILES, first_index=1, read=Outbox(telegram))
    assert [(f.file_name, f.reason) for f in skipped] == [
        ("chart.png", "not_allowed"),
        ("data.csv", "not_allowed"),
        ("notes.txt", "not_allowed"),
    ]
    assert telegram.sent_files() == [] and records.delivered_chunks(KEY, 21) == {}


@pytest.mark.parametrize("kind", ["videos", "animations", "music", "voice notes"])
def test_a_file_telegram_takes_for_media_the_group_does_not_allow_is_named_and_the_rest_go(
    telegram, kind: str
) -> None:
    """sendDocument lets Telegram tell what a file holds (an MP4 goes as a video, a GIF as an
    animation): a group that turned those off refuses it in their words, which is the group's
    permissions, not the chat shutting the bot out."""
    telegram.inject(
        "sendDocument", TelegramFault(400, f"Bad Request: not enough rights to send {kind} to the chat")
    )
    files = [staged("clip.mp4", "video/mp4"), staged("notes.txt", "text/plain")]
    skipped = delivery(telegram, Records()).deliver_files(
        MSG, KEY, files, first_index=1, read=lambda file: b"content"
    )
    assert [(f.file_name, f.reason) for f in skipped] == [("clip.mp4", "not_allowed")]
    assert [f.file_name for f in telegram.sent_files()] == ["notes.txt"]


def test_the_outbox_is_read_from_the_session_prefix_only_and_a_missing_object_is_none(aws: Any) -> None:
    bucket = aws.resources.bucket
    file = staged("data.csv", "text/csv")
    aws.s3.put_object(Bucket=bucket, Key=file.s3_key, Body=b"a,b\n")
    assert read_outbox_file(file, s3=aws.s3, bucket=bucket, key=KEY) == b"a,b\n"
    assert read_outbox_file(staged("expired.csv", None), s3=aws.s3, bucket=bucket, key=KEY) is None
    other = SessionKey.parse("default/-1005/8")  # another topic's session
    assert read_outbox_file(file, s3=aws.s3, bucket=bucket, key=other) is None


def test_a_refused_uploading_action_does_not_keep_the_file_back(telegram) -> None:
    telegram.inject("sendChatAction", TelegramFault(400, "Bad Request: not enough rights"), times=5)
    delivery(telegram, Records()).deliver_files(MSG, KEY, FILES[1:2], first_index=1, read=Outbox(telegram))
    [sent] = telegram.sent_files()
    assert sent.file_name == "data.csv"
