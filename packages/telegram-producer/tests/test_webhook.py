"""The webhook producer against real boto3 on the local AWS, fed API Gateway v2 events."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from agentbot_testing.telegram_support import (
    BOT_USERNAME,
    WEBHOOK_SECRET,
    envelopes,
    message,
    receive_all,
    update,
    webhook_event,
)
from session_core import ConfigError, SessionKey
from telegram_core import decode_envelope
from telegram_producer import (
    UNPROCESSABLE_UPDATES_METRIC,
    Producer,
    ProducerConfig,
    WebhookSecretError,
    parse_id_list,
)
from telegram_producer import handler as producer_handler


@pytest.fixture
def secret_parameter(aws, monkeypatch) -> str:
    name = f"/agentbot/test-{uuid.uuid4().hex[:8]}/webhook-secret"
    aws.client("ssm").put_parameter(Name=name, Value=WEBHOOK_SECRET, Type="SecureString")
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", name)
    monkeypatch.setenv("BOT_USERNAME", BOT_USERNAME)
    return name


@pytest.fixture
def producer(secret_parameter) -> Producer:
    return producer_handler.build_producer()


def body(response: dict) -> dict:
    return json.loads(response["body"])


def dropped(response: dict) -> str:
    """Why the producer dropped an update it can never process (answered 200, so Telegram does
    not send it again for a day); fails the test on any other answer."""
    assert response["statusCode"] == 200, response
    outcome = body(response)["outcome"]
    assert outcome.startswith("dropped: "), outcome
    return outcome.removeprefix("dropped: ")


def unprocessable_counted(capsys: pytest.CaptureFixture[str]) -> int:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    return sum(line.get(UNPROCESSABLE_UPDATES_METRIC, 0) for line in lines)


def test_text_message_is_enqueued_with_session_group_and_update_dedup_id(aws, producer) -> None:
    response = producer.handle_event(webhook_event(update(7001, chat_id=501, text="hi there")))
    assert response["statusCode"] == 200
    [raw] = receive_all(aws.sqs, aws.resources.queue_url)
    assert raw["Attributes"]["MessageGroupId"] == "default/501/0"
    assert raw["Attributes"]["MessageDeduplicationId"] == "default:7001"
    msg = decode_envelope(raw["Body"]).message
    assert (msg.update_id, msg.kind, msg.text, msg.chat_id, msg.message_id) == (
        7001,
        "message",
        "hi there",
        501,
        10,
    )
    assert msg.session_key == SessionKey(tenant="default", chat_id=501).canonical


def test_same_update_three_times_is_queued_once_even_after_sqs_dedup_window(aws, producer) -> None:
    event = webhook_event(update(7002))
    assert producer.handle_event(event)["statusCode"] == 200
    # moto forgets FIFO dedup once the first copy is deleted: only the durable mark can stop these
    assert len(envelopes(aws.sqs, aws.resources.queue_url)) == 1
    for _ in range(2):
        response = producer.handle_event(event)
        assert response["statusCode"] == 200 and body(response)["outcome"] == "duplicate"
    assert envelopes(aws.sqs, aws.resources.queue_url) == []


@pytest.mark.parametrize(
    ("secret", "status"), [(None, 401), ("wrong-secret", 403), ("", 403), (WEBHOOK_SECRET[:-1], 403)]
)
def test_missing_or_wrong_secret_enqueues_nothing(aws, producer, secret, status) -> None:
    response = producer.handle_event(webhook_event(update(7003), secret=secret))
    assert response["statusCode"] == status
    assert receive_all(aws.sqs, aws.resources.queue_url) == []


def test_header_name_is_case_insensitive(aws, producer) -> None:
    event = webhook_event(update(7004), secret=None)
    event["headers"]["X-Telegram-Bot-Api-Secret-Token"] = WEBHOOK_SECRET
    assert producer.handle_event(event)["statusCode"] == 200
    assert len(envelopes(aws.sqs, aws.resources.queue_url)) == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"update_id": 1, "edited_message": message(text="fixed typo")},
        {
            "update_id": 2,
            "callback_query": {
                "id": "q1",
                "from": {"id": 5, "is_bot": False, "first_name": "A"},
                "data": "x",
            },
        },
        {
            "update_id": 3,
            "my_chat_member": {
                "chat": {"id": -100, "type": "group"},
                "from": {"id": 5, "is_bot": False, "first_name": "A"},
                "date": 1,
            },
        },
        {"update_id": 4, "message_reaction": {"chat": {"id": 1, "type": "private"}}},
        {"update_id": 5, "message": message(text=None, new_chat_members=[{"id": 9}])},
    ],
    ids=["edited", "callback", "my_chat_member", "unknown_type", "service_message"],
)
def test_updates_that_start_no_turn_are_acknowledged_and_not_queued(aws, producer, payload) -> None:
    assert producer.handle_event(webhook_event(payload))["statusCode"] == 200
    assert receive_all(aws.sqs, aws.resources.queue_url) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1,2]",
        b'{"message": {}}',
        b'{"update_id": "x"}',
        b'{"update_id": 1, "message": {"message_id": 1, "chat": {"id": "abc"}}}',
        b'{"update_id": -5, "message": null}',
        b"\xff\xfe",
    ],
)
def test_malformed_bodies_are_acknowledged_dropped_and_counted(aws, producer, raw, capsys) -> None:
    dropped(producer.handle_event(webhook_event(raw)))
    assert receive_all(aws.sqs, aws.resources.queue_url) == []
    assert unprocessable_counted(capsys) == 1


class _LambdaContext:
    aws_request_id = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"


@pytest.mark.parametrize(
    "payload",
    [b"not json", {"update_id": 7020, "message": {"message_id": 1, "chat": {"id": "abc"}}}],
    ids=["not_json", "wrong_type"],
)
def test_the_lambda_answers_an_update_it_can_never_process_200_only_with_the_secret(
    aws, secret_parameter, monkeypatch, capsys, payload
) -> None:
    """Telegram retries every answer but a 2xx for up to a day: a 4xx for an update that can
    never be processed bought a day of retries, each refused again. Authenticated, it is
    acknowledged, logged and counted; without the secret it is still refused."""
    monkeypatch.setattr(producer_handler, "_producer", None)
    context = _LambdaContext()
    for secret, status in [(None, 401), ("wrong-secret-wrong-secret", 403)]:
        refused = producer_handler.handle(webhook_event(payload, secret=secret), context)
        assert refused["statusCode"] == status
    assert unprocessable_counted(capsys) == 0
    response = producer_handler.handle(webhook_event(payload), context)
    assert "not a Telegram update" in dropped(response)
    assert unprocessable_counted(capsys) == 1
    assert receive_all(aws.sqs, aws.resources.queue_url) == []


def test_base64_encoded_body_is_accepted(aws, producer) -> None:
    event = webhook_event(update(7005))
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    assert producer.handle_event(event)["statusCode"] == 200
    assert len(envelopes(aws.sqs, aws.resources.queue_url)) == 1


def test_photo_with_caption_carries_largest_size_and_caption_as_text(aws, producer) -> None:
    photo = [
        {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 1000},
        {"file_id": "big", "file_unique_id": "b", "width": 1280, "height": 1280, "file_size": 90000},
    ]
    producer.handle_event(webhook_event(update(7006, text=None, photo=photo, caption="what is it?")))
    [env] = envelopes(aws.sqs, aws.resources.queue_url)
    assert env.message.text == "what is it?"
    [att] = env.message.attachments
    assert (att.kind, att.file_id, att.file_size) == ("photo", "big", 90000)


def test_document_and_unsupported_content(aws, producer) -> None:
    doc = {
        "file_id": "d1",
        "file_unique_id": "u",
        "file_name": "r.csv",
        "mime_type": "text/csv",
        "file_size": 12,
    }
    producer.handle_event(webhook_event(update(7007, text=None, document=doc)))
    producer.handle_event(webhook_event(update(7008, text=None, voice={"file_id": "v", "duration": 2})))
    producer.handle_event(webhook_event(update(7009, text=None, sticker={"file_id": "s", "emoji": "🙂"})))
    got = {e.message.update_id: e.message for e in envelopes(aws.sqs, aws.resources.queue_url)}
    assert got[7007].kind == "message" and got[7007].attachments[0].file_name == "r.csv"
    assert (got[7008].kind, got[7008].unsupported_what) == ("unsupported", "voice")
    assert (got[7009].kind, got[7009].text) == ("message", "[Sticker 🙂]")


def test_allow_lists_admit_listed_users_anywhere_and_anyone_in_listed_chats(
    aws, secret_parameter, monkeypatch
) -> None:
    monkeypatch.setenv("ALLOWED_USER_IDS", "501, 502")
    monkeypatch.setenv("ALLOWED_CHAT_IDS", "-100777")
    monkeypatch.setenv("GROUP_REPLY_MODE", "always")
    producer = producer_handler.build_producer()
    producer.handle_event(webhook_event(update(1, chat_id=501, user_id=501)))
    producer.handle_event(webhook_event(update(2, chat_id=666, user_id=666)))
    producer.handle_event(webhook_event(update(3, chat_id=-100777, chat_type="supergroup", user_id=7)))
    producer.handle_event(webhook_event(update(4, chat_id=-100888, chat_type="supergroup", user_id=7)))
    assert sorted(e.message.update_id for e in envelopes(aws.sqs, aws.resources.queue_url)) == [1, 3]


def test_groups_answer_only_when_mentioned_or_replied_to(aws, producer) -> None:
    group = {"chat_id": -100123, "chat_type": "supergroup"}
    producer.handle_event(webhook_event(update(1, text="chatting among us", **group)))
    producer.handle_event(webhook_event(update(2, text=f"@{BOT_USERNAME.upper()} summarise", **group)))
    reply_to_bot = {
        "message_id": 3,
        "from": {"id": 9, "is_bot": True, "first_name": "Bot", "username": BOT_USERNAME},
    }
    producer.handle_event(webhook_event(update(3, text="and then?", reply_to_message=reply_to_bot, **group)))
    reply_to_human = {"message_id": 4, "from": {"id": 8, "is_bot": False, "first_name": "Bob"}}
    producer.handle_event(webhook_event(update(4, text="ok", reply_to_message=reply_to_human, **group)))
    got = {e.message.update_id: e.message.text for e in envelopes(aws.sqs, aws.resources.queue_url)}
    assert got == {2: "summarise", 3: "and then?"}


def test_group_reply_mode_always_answers_every_message(aws, secret_parameter, monkeypatch) -> None:
    monkeypatch.setenv("GROUP_REPLY_MODE", "always")
    producer = producer_handler.build_producer()
    producer.handle_event(webhook_event(update(1, text="anyone?", chat_id=-1001, chat_type="group")))
    assert len(envelopes(aws.sqs, aws.resources.queue_url)) == 1


def test_forum_topic_keeps_its_thread_in_the_session_key(aws, producer) -> None:
    producer.handle_event(
        webhook_event(
            update(1, text=f"@{BOT_USERNAME} hi", chat_id=-100555, chat_type="supergroup", thread_id=42)
        )
    )
    [raw] = receive_all(aws.sqs, aws.resources.queue_url)
    assert raw["Attributes"]["MessageGroupId"] == "default/-100555/42"


def test_queue_failure_is_5xx_and_the_redelivery_is_then_accepted(aws, secret_parameter) -> None:
    good = producer_handler.build_producer()
    broken_config = ProducerConfig.from_env()
    broken = Producer(
        config=ProducerConfig(
            **{**broken_config.__dict__, "queue_url": aws.resources.queue_url + "-missing.fifo"}
        ),
        secret=WEBHOOK_SECRET,
        sqs=aws.sqs,
        registry=good._registry,
    )
    event = webhook_event(update(7010))
    assert broken.handle_event(event)["statusCode"] >= 500
    assert good.handle_event(event)["statusCode"] == 200  # not wrongly marked as seen
    assert len(envelopes(aws.sqs, aws.resources.queue_url)) == 1


def test_lambda_handler_refuses_to_start_without_a_secret_setting(aws, monkeypatch) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET_PARAMETER", raising=False)
    monkeypatch.setattr(producer_handler, "_producer", None)
    with pytest.raises(ConfigError) as err:
        producer_handler.handle(webhook_event(update(1)), None)
    assert err.value.setting == "WEBHOOK_SECRET_PARAMETER"
    assert receive_all(aws.sqs, aws.resources.queue_url) == []


def test_lambda_handler_refuses_a_missing_or_unusable_secret_parameter(aws, monkeypatch) -> None:
    name = f"/agentbot/missing-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", name)
    monkeypatch.setattr(producer_handler, "_producer", None)
    with pytest.raises(ConfigError) as err:
        producer_handler.handle(webhook_event(update(1)), None)
    assert err.value.setting == name
    bad = f"/agentbot/bad-{uuid.uuid4().hex[:8]}"
    aws.client("ssm").put_parameter(Name=bad, Value="has spaces!", Type="SecureString")
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", bad)
    with pytest.raises(WebhookSecretError) as err2:
        producer_handler.handle(webhook_event(update(1)), None)
    assert err2.value.setting == "WEBHOOK_SECRET_PARAMETER"


@pytest.mark.parametrize("value", ["s3cret", "a1_B" * 3 + "xyz"])
def test_lambda_handler_refuses_a_secret_short_enough_to_guess(aws, monkeypatch, value) -> None:
    # The secret is all that tells Telegram's calls from a forged update "from" an allowed user.
    name = f"/agentbot/short-{uuid.uuid4().hex[:8]}"
    aws.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString")
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", name)
    monkeypatch.setattr(producer_handler, "_producer", None)
    forged = webhook_event(update(7012), secret=value)
    with pytest.raises(WebhookSecretError) as err:
        producer_handler.handle(forged, None)
    assert err.value.setting == "WEBHOOK_SECRET_PARAMETER" and "16-256 characters" in str(err.value)
    assert value not in str(err.value)
    assert receive_all(aws.sqs, aws.resources.queue_url) == []


def test_a_secret_of_sixteen_characters_is_enough(aws, monkeypatch) -> None:
    name = f"/agentbot/sixteen-{uuid.uuid4().hex[:8]}"
    aws.client("ssm").put_parameter(Name=name, Value="a1_B" * 4, Type="SecureString")
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", name)
    monkeypatch.setattr(producer_handler, "_producer", None)
    assert producer_handler.handle(webhook_event(update(7013), secret="a1_B" * 4), None)["statusCode"] == 200


def test_lambda_handler_serves_events_once_configured(aws, secret_parameter, monkeypatch) -> None:
    monkeypatch.setattr(producer_handler, "_producer", None)
    response = producer_handler.handle(webhook_event(update(7011)), None)
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    assert len(envelopes(aws.sqs, aws.resources.queue_url)) == 1


def test_bad_config_values_name_the_setting(secret_parameter, aws, monkeypatch) -> None:
    monkeypatch.setenv("GROUP_REPLY_MODE", "sometimes")
    with pytest.raises(ConfigError) as err:
        ProducerConfig.from_env()
    assert err.value.setting == "GROUP_REPLY_MODE"
    monkeypatch.setenv("GROUP_REPLY_MODE", "always")
    monkeypatch.setenv("ALLOWED_USER_IDS", "12,abc")
    with pytest.raises(ConfigError) as err:
        ProducerConfig.from_env()
    assert err.value.setting == "ALLOWED_USER_IDS"
    monkeypatch.setenv("ALLOWED_USER_IDS", "12")
    monkeypatch.setenv("APPROVER_USER_IDS", "12;13")
    with pytest.raises(ConfigError) as err:
        ProducerConfig.from_env()
    assert err.value.setting == "APPROVER_USER_IDS"


@pytest.mark.parametrize("raw", ["123 456", "1_000", "12,-", "--5"])
def test_an_id_list_with_a_missing_comma_is_refused_not_read_as_one_id(raw: str) -> None:
    """'123 456' was read as the id 123456: someone else's, and neither of the two meant."""
    with pytest.raises(ConfigError) as err:
        parse_id_list("ALLOWED_USER_IDS", raw)
    assert err.value.setting == "ALLOWED_USER_IDS" and "separate ids with commas" in err.value.reason


def test_an_id_list_takes_spaces_around_commas_and_negative_chat_ids() -> None:
    assert parse_id_list("ALLOWED_CHAT_IDS", " 501, -1001234 ,,502 ") == {501, -1001234, 502}


def test_characters_sqs_refuses_are_escaped_and_arrive_intact(aws, producer) -> None:
    text = "odd \ufffe\uffff \u202e end \U0010ffff"
    assert producer.handle_event(webhook_event(update(7012, text=text)))["statusCode"] == 200
    [raw] = receive_all(aws.sqs, aws.resources.queue_url)
    # SQS accepts only #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF (moto checks none)
    assert not {"\ufffe", "\uffff"} & set(raw["Body"])
    assert decode_envelope(raw["Body"]).message.text == text


def test_text_far_beyond_telegram_limits_is_dropped_not_queued(aws, producer) -> None:
    response = producer.handle_event(webhook_event(update(7013, text="x" * 20_000)))
    assert dropped(response) == "text too long"
    assert receive_all(aws.sqs, aws.resources.queue_url) == []


def test_an_unusable_tenant_fails_at_start_not_on_every_message(secret_parameter, monkeypatch) -> None:
    monkeypatch.setenv("TENANT", "Bad/Tenant")
    with pytest.raises(ConfigError) as err:
        ProducerConfig.from_env()
    assert err.value.setting == "TENANT"


# -- fault classes found from outside: numbers out of range, deep nesting, broken text ----


def _with(path: str, value: Any) -> dict:
    """An ordinary text update with the field at ``path`` (dots) set to ``value``."""
    payload = update(7100, chat_id=-1001234567890, chat_type="supergroup", thread_id=4)
    payload["message"]["text"] = f"@{BOT_USERNAME} hi"
    node: Any = payload
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return payload


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("update_id", 2**64),
        ("update_id", 2**52),
        ("update_id", -1),
        ("message.message_id", 2**63),
        ("message.from.id", 2**52),
        ("message.chat.id", 2**63),
        ("message.chat.id", -(2**63) - 1),
        ("message.message_thread_id", 2**70),
        ("message.date", -(2**64)),
        ("message.entities", [{"type": "bold", "offset": 0, "length": 2**64}]),
    ],
)
def test_ids_outside_the_bot_api_ranges_are_dropped_naming_the_field(aws, producer, path, value) -> None:
    outcome = dropped(producer.handle_event(webhook_event(_with(path, value))))
    assert "`$." in outcome and path.split(".")[-1] in outcome  # says what to fix
    assert receive_all(aws.sqs, aws.resources.queue_url) == []


def test_ids_at_the_edges_of_the_ranges_are_accepted(aws, producer) -> None:
    payload = _with("update_id", 2**52 - 1)
    payload["message"]["from"]["id"] = 2**52 - 1
    payload["message"]["chat"]["id"] = -(2**63)
    assert producer.handle_event(webhook_event(payload))["statusCode"] == 200
    [envelope] = envelopes(aws.sqs, aws.resources.queue_url)
    assert (envelope.message.update_id, envelope.message.chat_id) == (2**52 - 1, -(2**63))


def _with_deep(path: str, levels: int, kind: str) -> bytes:
    """The body of ``_with(path, ...)`` whose value nests ``levels`` deep (json.dumps would
    recurse, so the nested part is written by hand)."""
    opening, closing = (b"[", b"]") if kind == "list" else (b'{"k":', b"}")
    deep = opening * levels + b"1" + closing * levels
    return json.dumps(_with(path, "DEEP")).encode().replace(b'"DEEP"', deep)


@pytest.mark.parametrize(
    ("path", "levels", "kind"),
    [
        ("message.unknown_field", 1_000, "list"),  # the 2.3 KB body found from outside
        ("message.unknown_field", 100_000, "dict"),
        ("unknown_update_type", 70, "list"),
        ("message.voice", 5_000, "dict"),  # a field the producer reads as Any
        ("message.chat.unknown_field", 2_000, "list"),
    ],
)
@pytest.mark.parametrize("base64_wrapped", [False, True])
def test_deeply_nested_bodies_are_dropped_not_an_exception(
    aws, producer, path, levels, kind, base64_wrapped
) -> None:
    raw = _with_deep(path, levels, kind)
    event = webhook_event(raw)
    if base64_wrapped:
        event.update(body=base64.b64encode(raw).decode(), isBase64Encoded=True)
    assert "nests deeper than" in dropped(producer.handle_event(event))
    assert receive_all(aws.sqs, aws.resources.queue_url) == []


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_nesting_within_the_limit_is_still_accepted(aws, producer, kind) -> None:
    response = producer.handle_event(webhook_event(_with_deep("message.unknown_field", 50, kind)))
    assert response["statusCode"] == 200, response


BROKEN_TEXTS = ["hi \ud83d", "\udc00 low first", "reversed \ude00\ud83d pair", "end\ud800", "\ud83d" * 5]


@pytest.mark.parametrize("text", BROKEN_TEXTS)
@pytest.mark.parametrize("field", ["text", "first_name"])
def test_lone_surrogates_in_a_str_body_are_replaced_and_queued(aws, producer, text, field) -> None:
    # API Gateway's event JSON may escape a lone surrogate; json.loads then puts it in the str.
    payload = update(7102, text=text if field == "text" else "hello")
    payload["message"]["from"]["first_name"] = text if field == "first_name" else "Alice"
    event = webhook_event(payload)
    event.update(body=json.dumps(payload, ensure_ascii=False), isBase64Encoded=False)
    response = producer.handle_event(event)
    assert response["statusCode"] == 200, response
    [envelope] = envelopes(aws.sqs, aws.resources.queue_url)
    expected = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    assert "\ufffd" in expected
    if field == "text":
        assert envelope.message.text == expected


@pytest.mark.parametrize("text", BROKEN_TEXTS)
def test_lone_surrogates_as_json_escapes_or_raw_bytes_are_dropped(aws, producer, text) -> None:
    payload = update(7103, text=text)
    escaped = json.dumps(payload).encode()  # "\\ud83d": valid JSON, not valid text
    cesu = json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")  # bad UTF-8
    for raw in (escaped, cesu):
        assert dropped(producer.handle_event(webhook_event(raw))).startswith("not a Telegram update: ")
    assert receive_all(aws.sqs, aws.resources.queue_url) == []
