"""Hypothesis-generated webhook bodies: always a 2xx/4xx, never an exception, and whatever
lands on the queue decodes as a QueueEnvelope."""

from __future__ import annotations

import json
import uuid

import pytest
from agentbot_testing.telegram_support import BOT_USERNAME, WEBHOOK_SECRET, envelopes, webhook_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram_producer import handler as producer_handler

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

odd_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=300) | st.sampled_from(
    [
        "\ufffe\uffff",
        "\u202e\u200b",
        "\x00\x01\x1f",
        "@" + BOT_USERNAME,
        "🧪" * 50,
        "/status@" + BOT_USERNAME,
        "a" * 20_000,
        "\U0010ffff",
        "&<b>",
    ]
)
ints = st.integers(min_value=-(2**70), max_value=2**70) | st.integers(min_value=-5, max_value=5)
# Mostly plausible ids, sometimes wild ones (negative, zero, beyond 64 bits).
ids = st.one_of(st.integers(1, 2**40), st.integers(1, 2**40), st.integers(1, 2**40), ints)
json_scalars = st.none() | st.booleans() | ints | st.floats(allow_nan=False) | odd_text
any_json = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def updates(draw) -> dict:
    """Mostly Update-shaped dicts with fields dropped, retyped or stretched."""
    chat = {
        "id": draw(st.one_of(ids, ids, st.integers(-(2**52), -1), json_scalars)),
        "type": draw(st.sampled_from(["private", "group", "supergroup", "channel", 5, None])),
    }
    message = {
        "message_id": draw(ids),
        "date": draw(ids),
        "chat": chat,
        "from": {"id": draw(ids), "is_bot": draw(st.booleans()), "first_name": "x"},
    }
    for name in draw(
        st.lists(
            st.sampled_from(
                [
                    "text",
                    "caption",
                    "message_thread_id",
                    "is_topic_message",
                    "photo",
                    "document",
                    "voice",
                    "sticker",
                    "reply_to_message",
                    "entities",
                ]
            ),
            max_size=4,
            unique=True,
        )
    ):
        message[name] = draw(
            {
                "text": odd_text,
                "caption": odd_text,
                "message_thread_id": ids,
                "is_topic_message": st.booleans(),
                "photo": st.lists(st.fixed_dictionaries({"file_id": odd_text}), max_size=2),
                "document": st.fixed_dictionaries({"file_id": odd_text}, optional={"file_size": ints}),
            }.get(name, any_json)
        )
    update = {
        "update_id": draw(ids),
        draw(st.sampled_from(["message"] * 4 + ["edited_message", "callback_query", "poll"])): message,
    }
    for key in draw(st.lists(st.sampled_from([*update, "chat", "from"]), max_size=2)):
        update.pop(key, None)
        message.pop(key, None)
    return update


@st.composite
def plausible_updates(draw) -> dict:
    """Well-formed text messages whose text is odd: these reach the queue."""
    chat_id = draw(st.integers(1, 2**40) | st.integers(-(2**52), -1))
    chat_type = "private" if chat_id > 0 else draw(st.sampled_from(["group", "supergroup"]))
    message = {
        "message_id": draw(st.integers(1, 2**31)),
        "date": 1_700_000_000,
        "chat": {"id": chat_id, "type": chat_type},
        "from": {"id": draw(st.integers(1, 2**40)), "is_bot": False, "first_name": "x"},
        "text": draw(odd_text),
    }
    if draw(st.booleans()):
        message.update(message_thread_id=draw(st.integers(1, 2**31 - 1)), is_topic_message=True)
    return {"update_id": draw(st.integers(0, 2**40)), "message": message}


def body_of(update: dict) -> bytes:
    return json.dumps(update, ensure_ascii=False).encode("utf-8", "surrogatepass")


bodies = (
    plausible_updates().map(body_of)
    | updates().map(body_of)
    | any_json.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=300)
    | odd_text.map(lambda t: t.encode("utf-8", "surrogatepass"))
)


@pytest.fixture
def producer(aws, monkeypatch):
    name = f"/agentbot/fuzz-{uuid.uuid4().hex[:8]}"
    aws.client("ssm").put_parameter(Name=name, Value=WEBHOOK_SECRET, Type="SecureString")
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", name)
    monkeypatch.setenv("BOT_USERNAME", BOT_USERNAME)
    monkeypatch.setenv("GROUP_REPLY_MODE", "always")
    return producer_handler.build_producer()


def nested(levels: int) -> bytes:
    return b'{"update_id": 1, "x": ' + b"[" * levels + b"]" * levels + b"}"


bodies = bodies | st.integers(60, 5_000).map(nested)


@FUZZ
@given(body=bodies, wrapping=st.sampled_from(["as sent", "base64", "str"]))
def test_any_body_gets_2xx_or_4xx_and_never_garbage_on_the_queue(aws, producer, body, wrapping) -> None:
    event = webhook_event(body)
    if wrapping == "base64" and not event["isBase64Encoded"]:
        import base64

        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    if wrapping == "str":  # the event's JSON escaped what is not UTF-8: any code point in a str
        event["body"] = body.decode("utf-8", "surrogatepass") if _cesu_ok(body) else body.decode("latin-1")
        event["isBase64Encoded"] = False
    response = producer.handle_event(event)
    assert 200 <= response["statusCode"] < 500, response
    for envelope in envelopes(aws.sqs, aws.resources.queue_url):  # decode_envelope or fail
        assert response["statusCode"] == 200
        assert 0 <= envelope.message.update_id < 2**52  # the Bot API's documented range


def _cesu_ok(body: bytes) -> bool:
    try:
        body.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return False
    return True


@FUZZ
@given(event=any_json)
def test_events_that_are_not_api_gateway_shaped_are_4xx(producer, event) -> None:
    response = producer.handle_event(event)
    assert response["statusCode"] in (400, 401)
