"""Shared pieces of the Telegram tests: update builders, webhook events, queue readers."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from session_core import QueueEnvelope, decode_envelope

from agentbot.local_events import http_api_event

WEBHOOK_SECRET = "test-webhook-secret_0123456789"
BOT_USERNAME = "agent_test_bot"
BOT_USER_ID = 999000111
# The runtime's answer text for "busy" (agent_runtime._turn.USER_MESSAGES["busy"]).
BUSY_TEXT = "I'm still working on your previous message in this chat; I'll answer this one right after."


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


class ThrottlingDynamoDB:
    """An HTTP proxy in front of the local DynamoDB endpoint that answers the first
    ``times`` requests for ``operation`` whose body contains ``body_contains`` with
    ``ProvisionedThroughputExceededException`` (as DynamoDB does) and forwards everything
    else. ``with ThrottlingDynamoDB(upstream, ...) as proxy:`` → point a client at
    ``proxy.endpoint``; ``proxy.throttled`` counts the refused requests."""

    def __init__(self, upstream: str, *, operation: str, body_contains: str, times: int) -> None:
        self.upstream = upstream.rstrip("/")
        self.operation = operation
        self.body_contains = body_contains.encode()
        self.times = times
        self.throttled = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ThrottlingDynamoDB:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "")
                if target.endswith("." + proxy.operation) and proxy.body_contains in body:
                    with proxy._lock:
                        throttle = proxy.throttled < proxy.times
                        proxy.throttled += throttle
                    if throttle:
                        self._reply(400, json.dumps({
                            "__type": "com.amazonaws.dynamodb.v20120810#"
                                      "ProvisionedThroughputExceededException",
                            "message": "The level of configured provisioned throughput for the "
                                       "table was exceeded.",
                        }).encode(), "application/x-amz-json-1.0")
                        return
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                request = urllib.request.Request(proxy.upstream + self.path, data=body, headers=headers,
                                                 method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, data, kind = answer.status, answer.read(), answer.headers.get("Content-Type")
                except urllib.error.HTTPError as error:
                    status, data, kind = error.code, error.read(), error.headers.get("Content-Type")
                self._reply(status, data, kind or "application/x-amz-json-1.0")

            def _reply(self, status: int, data: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
