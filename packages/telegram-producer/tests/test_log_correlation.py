"""An operator finds a webhook call in the producer's JSON log lines by the Lambda request id
(the one API Gateway's access log and Lambda's REPORT line name), the ``update_id`` and the
``session_key``: every line about an update carries all three. Real boto3 on the local AWS."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from agentbot_testing.telegram_support import BOT_USERNAME, WEBHOOK_SECRET, update, webhook_event
from session_core import configure_logging
from telegram_producer import Producer
from telegram_producer import handler as producer_handler

REQUEST_ID = "0b6c1f2e-5d4a-4e8b-9c3f-7a1d2e3f4a5b"


@pytest.fixture
def producer(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Producer:
    name = f"/agentbot/test-{uuid.uuid4().hex[:8]}/webhook-secret"
    aws.client("ssm").put_parameter(Name=name, Value=WEBHOOK_SECRET, Type="SecureString")
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", name)
    monkeypatch.setenv("BOT_USERNAME", BOT_USERNAME)
    return producer_handler.build_producer()


def logged(capsys: pytest.CaptureFixture[str], event: str) -> dict[str, Any]:
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [line] = [line for line in lines if line["event"] == event]
    return line


@pytest.mark.parametrize(
    ("text", "event"),
    [("what is new?", "update_enqueued"), ("/stop", "stop_requested")],
    ids=["message", "stop"],
)
def test_the_line_about_an_update_names_the_request_the_update_and_the_chat(
    producer: Producer, capsys: pytest.CaptureFixture[str], text: str, event: str
) -> None:
    configure_logging(json_lines=True)
    response = producer.handle_event(
        webhook_event(update(9101, chat_id=912, user_id=912, text=text)), request_id=REQUEST_ID
    )
    assert response["statusCode"] == 200
    line = logged(capsys, event)
    assert (line.get("request_id"), line.get("update_id"), line.get("session_key")) == (
        REQUEST_ID,
        9101,
        "default/912/0",
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"text": "far beyond Telegram's limits " * 1000}, "text too long"),
        ({"chat_id": 0, "text": "hello"}, "unusable chat: chat_id"),
    ],
    ids=["text_too_long", "unusable_chat"],
)
def test_an_update_dropped_is_logged_with_why_and_without_its_text(
    producer: Producer, capsys: pytest.CaptureFixture[str], fields: dict[str, Any], reason: str
) -> None:
    """An update the producer can never process is dropped: nobody answers that message.
    The operator asked about it finds the update and the reason in the log."""
    configure_logging(json_lines=True)
    response = producer.handle_event(webhook_event(update(9102, **fields)), request_id=REQUEST_ID)
    assert response["statusCode"] == 200
    line = logged(capsys, "update_unprocessable")
    assert (line["reason"], line["update_id"], line["request_id"]) == (
        reason,
        9102,
        REQUEST_ID,
    )
    assert "Telegram's limits" not in json.dumps(line)
