"""Shared pieces of the Telegram tests: update builders, webhook events, queue readers."""

from __future__ import annotations

import json
import time
from typing import Any

from local_stack import http_api_event
from telegram_core import QueueEnvelope, decode_envelope

WEBHOOK_SECRET = "test-webhook-secret_0123456789"
BOT_USERNAME = "agent_test_bot"
BOT_USER_ID = 999000111
# What the files the runtime stub's "files:<n>" sends hold (notes-<i>.txt: b"note <i>").
OUTBOX_FILE_CONTENT = {
    "chart.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "data.csv": b"day,visits\n1,10\n2,12\n",
}


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
