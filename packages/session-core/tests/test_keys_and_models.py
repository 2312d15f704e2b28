"""Session keys stay inside their prefix; boundary models reject what they don't understand."""

from __future__ import annotations

import msgspec
import pytest
import session_core
from session_core import (
    InboundMessage,
    InvalidSessionKeyError,
    MessageDecodeError,
    QueueEnvelope,
    SessionKey,
    TurnRequest,
    TurnResult,
    UnsupportedVersionError,
    decode_envelope,
    decode_turn_request,
    decode_turn_result,
    encode,
)


def test_canonical_key_is_the_group_id_table_key_and_s3_prefix() -> None:
    key = SessionKey(tenant="acme", chat_id=-1001234567890, thread_id=42)
    assert key.canonical == "acme/-1001234567890/42"
    assert key.s3_prefix == "sessions/acme/-1001234567890/42/"
    assert SessionKey.parse(key.canonical) == key
    # SQS MessageGroupId allows at most 128 characters.
    longest = SessionKey(tenant="a" * 32, chat_id=-(2**63), thread_id=2**31 - 1)
    assert len(longest.canonical) <= 128


@pytest.mark.parametrize(
    "tenant",
    ["", "..", "a/b", "a\\b", "A", "ä", "tenant\x00", "-lead", "trail-", " x", "a" * 33, "a.b", "%2e%2e"],
)
def test_tenant_with_path_unicode_empty_or_overlong_parts_is_rejected(tenant: str) -> None:
    with pytest.raises(InvalidSessionKeyError) as info:
        SessionKey(tenant=tenant, chat_id=1)
    assert info.value.field == "tenant"


@pytest.mark.parametrize(
    ("chat_id", "thread_id", "field"),
    [
        (0, 0, "chat_id"),
        (2**63, 0, "chat_id"),
        (True, 0, "chat_id"),
        (1, -1, "thread_id"),
        (1, 2**31, "thread_id"),
    ],
)
def test_out_of_range_ids_are_rejected(chat_id: int, thread_id: int, field: str) -> None:
    with pytest.raises(InvalidSessionKeyError) as info:
        SessionKey(tenant="t", chat_id=chat_id, thread_id=thread_id)
    assert info.value.field == field


@pytest.mark.parametrize(
    "text",
    [
        "t/1",
        "t/1/0/x",
        "t/../0",
        "t/1/../../etc",
        "t/+1/0",
        "t/01/0",
        "t/-0/0",
        "t/1/٣",
        "t/1/0/",
        "/t/1/0",
        "t/1e3/0",
        "",
    ],
)
def test_parse_accepts_only_the_canonical_form(text: str) -> None:
    with pytest.raises(InvalidSessionKeyError):
        SessionKey.parse(text)


def test_key_decoded_from_json_is_validated() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"tenant":"../x","chat_id":1}', type=SessionKey)


def _message() -> InboundMessage:
    return InboundMessage(
        update_id=7,
        session_key="default/5/0",
        kind="message",
        chat_id=5,
        chat_type="private",
        message_id=3,
        text="hi",
    )


def test_envelope_round_trips_and_unknown_versions_are_rejected() -> None:
    envelope = QueueEnvelope(version=1, message=_message())
    assert decode_envelope(encode(envelope)) == envelope
    future = encode(QueueEnvelope(version=2, message=_message()))
    with pytest.raises(UnsupportedVersionError) as info:
        decode_envelope(future)
    assert info.value.version == 2 and info.value.model == "QueueEnvelope"
    with pytest.raises(UnsupportedVersionError):
        decode_envelope(b'{"message": {}}')
    with pytest.raises(MessageDecodeError):
        decode_envelope(b"not json")
    with pytest.raises(MessageDecodeError):
        decode_envelope(b'{"version": 1, "message": {"update_id": "seven"}}')


def test_turn_request_and_result_round_trip() -> None:
    request = TurnRequest(version=1, session_key="default/5/0", update_id=7, prompt="hello")
    assert decode_turn_request(encode(request)) == request
    result = TurnResult(version=1, session_key="default/5/0", update_id=7, text="hi", session_id="s")
    decoded = decode_turn_result(encode(result))
    assert decoded == result and decoded.ok
    failed = TurnResult(version=1, session_key="default/5/0", update_id=7, error_kind="busy", retryable=True)
    assert not decode_turn_result(encode(failed)).ok
    with pytest.raises(UnsupportedVersionError):
        decode_turn_result(b'{"version": 9, "session_key": "x", "update_id": 1}')


def test_public_surface_is_exactly_what_init_exports() -> None:
    exported = {name for name in dir(session_core) if not name.startswith("_")}
    assert exported == set(session_core.__all__)
    for name in session_core.__all__:
        assert getattr(session_core, name) is not None
