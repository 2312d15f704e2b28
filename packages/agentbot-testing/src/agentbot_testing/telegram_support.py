"""Shared pieces of the Telegram tests: update builders, webhook events, queue readers."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from local_stack import http_api_event
from session_core import TURN_VERSION, ErrorKind, TurnRequest, TurnResult, utf16_len
from telegram_core import (
    BOT_COMMAND_MARK,
    ENVELOPE_VERSION,
    InboundMessage,
    QueueEnvelope,
    decode_envelope,
    encode_envelope,
)

WEBHOOK_SECRET = "test-webhook-secret_0123456789"
BOT_USERNAME = "agent_test_bot"
BOT_USER_ID = 999000111
# A value of a known enumeration that no release has (yet): what the runtime stub's
# "newer:<what>" answers carry, as a runtime one release newer would.
NEWER_VALUE = "some_future_value"
# What the files the runtime stub's "files:<n>" sends hold (notes-<i>.txt: b"note <i>").
OUTBOX_FILE_CONTENT = {
    "chart.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "data.csv": b"day,visits\n1,10\n2,12\n",
}

# Telegram makes a mention of an "@" and a username's characters after it (not inside a word,
# as in an address): one in the bot's own message notifies that person as anyone's does.
_MENTION_RE = re.compile(r"(?<![\w@])@([A-Za-z0-9_]+)")


# What Telegram marks in a message's text as it arrives (``entities``): an e-mail address first
# ("help@agent_bot.com" is one, not a mention), a command at the start of a word
# ("/new@agent_bot", one entity), a mention.
_MARKED_RE = re.compile(
    r"(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
    rf"|(?P<bot_command>(?<!\S){BOT_COMMAND_MARK})"
    r"|(?P<mention>(?<![\w@])@[A-Za-z0-9_]{3,32}\b)"
)


def entities_of(text: str) -> list[dict[str, Any]]:
    """The ``entities`` Telegram gives ``text`` (mentions, e-mail addresses, commands; offsets
    and lengths in UTF-16 code units, as Telegram counts)."""
    return [
        {
            "type": match.lastgroup,
            "offset": utf16_len(text[: match.start()]),
            "length": utf16_len(match.group(0)),
        }
        for match in _MARKED_RE.finditer(text)
    ]


def mentions(text: str) -> list[str]:
    """The usernames Telegram makes a mention of in a message's visible ``text``: each one's
    owner is notified."""
    return _MENTION_RE.findall(text)


def as_read(text: str) -> str:
    """A message's visible ``text`` as a person reads it: without word joiners (U+2060), which
    show nothing."""
    return text.replace("\u2060", "")


def user(user_id: int = 501, username: str | None = "alice") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": "Alice", "username": username}


def message(
    *,
    message_id: int = 10,
    chat_id: int = 501,
    chat_type: str = "private",
    text: str | None = "hello",
    user_id: int = 501,
    thread_id: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Telegram Message as it appears in an Update (private chat unless told)."""
    chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
    if chat_type == "private":
        chat.update(first_name="Alice", username="alice")
    else:
        chat["title"] = "Team"
        if thread_id is not None:
            chat["is_forum"] = True
    msg: dict[str, Any] = {
        "message_id": message_id,
        "from": user(user_id),
        "chat": chat,
        "date": int(time.time()),
    }
    if text is not None:
        msg["text"] = text
    if thread_id is not None:
        msg["message_thread_id"] = thread_id
        msg["is_topic_message"] = True
    msg.update(extra)
    return with_entities(msg)


def with_entities(msg: dict[str, Any]) -> dict[str, Any]:
    """``msg`` with the ``entities`` (``caption_entities``) Telegram gives its text (caption)
    where it has none given; Telegram leaves the field out when it marks nothing."""
    for field, marked in (("text", "entities"), ("caption", "caption_entities")):
        found = entities_of(msg[field]) if isinstance(msg.get(field), str) else []
        if found and marked not in msg:
            msg[marked] = found
    return msg


def update(update_id: int, **message_fields: Any) -> dict[str, Any]:
    return {"update_id": update_id, "message": message(**message_fields)}


def webhook_event(
    body: dict[str, Any] | bytes | str, *, secret: str | None = WEBHOOK_SECRET
) -> dict[str, Any]:
    """The API Gateway HTTP API v2 event Telegram's webhook call becomes."""
    if isinstance(body, dict):
        raw = json.dumps(body).encode()
    elif isinstance(body, str):
        raw = body.encode("utf-8", "surrogatepass")
    else:
        raw = body
    headers = {"Content-Type": "application/json", "User-Agent": "TelegramBot (like TwitterBot)"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return http_api_event(method="POST", path="/webhook", headers=headers, body=raw)


def receive_all(sqs: Any, queue_url: str, *, delete: bool = True) -> list[dict[str, Any]]:
    """Every message on the queue (all groups), with real system attributes."""
    out: list[dict[str, Any]] = []
    for _ in range(200):
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=30,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            break
        out.extend(got)
        if delete:
            for m in got:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return out


def queue_inbound(sqs: Any, queue_url: str, msg: InboundMessage) -> None:
    """Put ``msg`` on the inbound FIFO queue as the producer does: in its session's group, with
    a deduplication id of its own (each call is a new message)."""
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=encode_envelope(QueueEnvelope(version=ENVELOPE_VERSION, message=msg)).decode(),
        MessageGroupId=msg.session_key,
        MessageDeduplicationId=uuid.uuid4().hex,
    )


def answered(request: TurnRequest, text: str) -> TurnResult:
    """What a runtime stub answers: ``text`` for ``request``'s turn."""
    return TurnResult(
        version=TURN_VERSION, session_key=request.session_key, turn_id=request.turn_id, text=text
    )


def failed(request: TurnRequest, kind: ErrorKind = "model_error", *, retryable: bool = True) -> TurnResult:
    """What a runtime stub answers for a turn that failed (by default: the model, retryably)."""
    return TurnResult(
        version=TURN_VERSION,
        session_key=request.session_key,
        turn_id=request.turn_id,
        error_kind=kind,
        retryable=retryable,
    )


def envelopes(sqs: Any, queue_url: str) -> list[QueueEnvelope]:
    """Decode (and remove) everything on the queue; anything undecodable fails the test."""
    return [decode_envelope(m["Body"]) for m in receive_all(sqs, queue_url)]


def long_markdown(size: int) -> str:
    """A deterministic Markdown answer of at least ``size`` characters with code blocks."""
    parts: list[str] = []
    i = 0
    while sum(len(p) + 2 for p in parts) < size:
        if i % 4 == 3:
            lines = "\n".join(f"    value_{i}_{k} = compute({k}) < limit && ok  # <&>" for k in range(40))
            parts.append(f"```python\ndef step_{i}():\n{lines}\n```")
        else:
            parts.append(
                f"## Part {i}\nThis is **paragraph {i}** with `inline <code>` and *emphasis*, "
                + "a & b < c > d. " * 12
            )
        i += 1
    return "\n\n".join(parts)


def voice_note(said: str, *, seconds: float = 4.0, claims_s: float = 1.0) -> bytes:
    """A voice message's audio as Telegram's apps record it, Ogg Opus, that plays ``seconds``
    (60 ms packets of silence) whatever its pages' granule positions claim (``claims_s``, past
    the pre-skip); what is ``said`` rides in its tags' vendor string, for a scripted
    Transcribe (``heard``)."""
    vendor = f"said={said}".encode()
    pre_skip = 312  # samples the decoder drops: a granule position counts them too
    head = (
        b"OpusHead"
        + bytes([1, 1])
        + pre_skip.to_bytes(2, "little")
        + (48000).to_bytes(4, "little")
        + bytes(3)
    )
    tags = b"OpusTags" + len(vendor).to_bytes(4, "little") + vendor + bytes(4)
    audio = [b"\x18\x00\x00"] * round(seconds / 0.06)  # TOC config 3 (SILK, 60 ms), one frame
    pages = [[head], [tags], *(audio[start : start + 255] for start in range(0, len(audio), 255))]
    return b"".join(
        _ogg_page(packets, sequence, granule=pre_skip + round(claims_s * 48000) if sequence > 1 else 0)
        for sequence, packets in enumerate(pages)
    )


def heard(audio: bytes) -> str | None:
    """What a ``voice_note`` says ("noise": nothing Transcribe can make out, so None)."""
    tags = audio.index(b"OpusTags") + 8
    size = int.from_bytes(audio[tags : tags + 4], "little")
    said = audio[tags + 4 : tags + 4 + size].decode().removeprefix("said=")
    return None if said == "noise" else said


def _ogg_page(packets: list[bytes], sequence: int, *, granule: int) -> bytes:
    lacing = b"".join(bytes([255] * (len(p) // 255) + [len(p) % 255]) for p in packets)
    return (
        b"OggS\x00"
        + bytes([2 if sequence == 0 else 0])  # the first page begins the stream
        + granule.to_bytes(8, "little")
        + (7).to_bytes(4, "little")  # the stream's serial number
        + sequence.to_bytes(4, "little")
        + bytes(4)  # CRC: not checked by the consumer nor the scripted Transcribe
        + bytes([len(lacing)])
        + lacing
        + b"".join(packets)
    )
