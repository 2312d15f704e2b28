"""Session keys stay inside their prefix; boundary models reject what they don't understand."""

from __future__ import annotations

import msgspec
import pytest
import session_core
from session_core import (
    TURN_VERSION,
    InvalidSessionKeyError,
    MessageDecodeError,
    SessionKey,
    TurnRequest,
    TurnResult,
    UnsupportedVersionError,
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


def test_turn_request_and_result_round_trip() -> None:
    request = TurnRequest(version=TURN_VERSION, session_key="default/5/0", turn_id=7, prompt="hello")
    assert decode_turn_request(encode(request)) == request
    result = TurnResult(version=TURN_VERSION, session_key="default/5/0", turn_id=7, text="hi", session_id="s")
    decoded = decode_turn_result(encode(result))
    assert decoded == result and decoded.ok
    failed = TurnResult(
        version=TURN_VERSION,
        session_key="default/5/0",
        turn_id=7,
        error_kind="model_error",
        error_reason="timeout",
    )
    assert decode_turn_result(encode(failed)) == failed and not failed.ok
    with pytest.raises(UnsupportedVersionError) as info:
        decode_turn_result(b'{"version": 9, "session_key": "x", "turn_id": 1}')
    assert info.value.supported == (1, 2)


def test_version_1_turns_named_by_update_id_still_decode_as_the_current_model() -> None:
    # What the consumer sent and the registry stored before the turn id became channel-neutral.
    stored = (
        b'{"version": 1, "session_key": "default/5/0", "update_id": 7, "text": "hi",'
        b' "user_message": null, "retryable": false, "replayed": false}'
    )
    assert decode_turn_result(stored) == TurnResult(
        version=TURN_VERSION, session_key="default/5/0", turn_id=7, text="hi"
    )
    in_flight = b'{"version": 1, "session_key": "default/5/0", "update_id": 8, "prompt": "hello"}'
    assert decode_turn_request(in_flight) == TurnRequest(
        version=TURN_VERSION, session_key="default/5/0", turn_id=8, prompt="hello"
    )
    with pytest.raises(MessageDecodeError):
        decode_turn_request(b'{"version": 1, "session_key": "default/5/0", "update_id": "x", "prompt": "p"}')
    with pytest.raises(MessageDecodeError):  # version 2 has no update_id
        decode_turn_request(b'{"version": 2, "session_key": "default/5/0", "update_id": 8, "prompt": "p"}')


def test_public_surface_is_exactly_what_init_exports() -> None:
    exported = {name for name in dir(session_core) if not name.startswith("_")}
    assert exported == set(session_core.__all__)
    for name in session_core.__all__:
        assert getattr(session_core, name) is not None
