"""Text and JSON at session-core's boundaries: any code point sequence is written (lone
surrogates replaced), and outside JSON of any nesting is refused with MessageDecodeError."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from session_core import (
    TURN_VERSION,
    JsonTooDeepError,
    MessageDecodeError,
    SessionKey,
    SessionRegistry,
    TurnRequest,
    TurnResult,
    decode_turn_request,
    decode_turn_result,
    encode,
    well_formed,
)

KEY = SessionKey.parse("default/77/0")
# High alone, low alone, a pair in the wrong order, one at the very end, several in a row.
BROKEN = ["x\ud83d", "\udc00y", "\ude00\ud83d", "end\ud800", "\ud83d\ud83d\ud83d"]
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=50)


def result(text: str, update_id: int = 1) -> TurnResult:
    return TurnResult(
        version=TURN_VERSION, session_key=KEY.canonical, turn_id=update_id, text=text, cost_usd=0.25
    )


@pytest.mark.parametrize("text", BROKEN)
def test_registry_records_answers_with_lone_surrogates(aws: Any, text: str) -> None:
    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=30)

    counted = registry.record_turn(lease, result=result(text, update_id=9))

    assert counted.text == text  # the caller's own object
    recorded = registry.get_turn_result(KEY, 9)
    assert recorded is not None and recorded.replayed
    assert recorded.text == well_formed(text) and "\ufffd" in recorded.text
    session = registry.get_session(KEY)
    assert session is not None and session.cost_usd == 0.25 and session.turns == 1


def test_well_formed_keeps_valid_text_and_joins_split_pairs() -> None:
    assert well_formed("plain ✓ 😀 \U0010ffff") == "plain ✓ 😀 \U0010ffff"
    assert well_formed("\ud83d\ude00") == "😀"  # a pair written as two code points
    assert well_formed("a\ud83db") == "a\ufffdb"


@settings(max_examples=300, deadline=None)
@given(text=any_text, prompt=any_text)
def test_any_text_crosses_every_boundary_message(text: str, prompt: str) -> None:
    answer = decode_turn_result(encode(result(text)))
    assert answer.text == well_formed(text)
    request = TurnRequest(version=TURN_VERSION, session_key=KEY.canonical, turn_id=1, prompt=prompt)
    assert decode_turn_request(encode(request)).prompt == well_formed(prompt)
    # The same message as a str that holds the raw code points (as json.loads of an SQS
    # body or a Lambda event makes it) decodes as well.
    as_str = json.dumps(msgspec.to_builtins(request), ensure_ascii=False)
    assert decode_turn_request(as_str).prompt == well_formed(prompt)


def _deep(levels: int, kind: str) -> bytes:
    opening, closing = (b"[", b"]") if kind == "list" else (b'{"k":', b"}")
    return opening * levels + b"1" + closing * levels


@pytest.mark.parametrize("decode", [decode_turn_request, decode_turn_result])
@pytest.mark.parametrize(("levels", "kind"), [(65, "list"), (1_000, "list"), (200_000, "dict")])
@pytest.mark.parametrize("where", ["version", "unknown", "top"])
def test_deeply_nested_messages_are_refused_with_a_decode_error(decode, levels, kind, where) -> None:
    deep = _deep(levels, kind)
    data = {
        "version": b'{"version": ' + deep + b"}",
        "unknown": b'{"version": 1, "session_key": "default/77/0", "extra": ' + deep + b"}",
        "top": deep,
    }[where]
    with pytest.raises(JsonTooDeepError) as caught:
        decode(data)
    assert isinstance(caught.value, MessageDecodeError)
    assert "nests deeper than 64 levels" in str(caught.value)
    with pytest.raises(MessageDecodeError):  # the same as text (an SQS body is a str)
        decode(data.decode())


@pytest.mark.parametrize("decode", [decode_turn_request, decode_turn_result])
@pytest.mark.parametrize("data", [b"\xff\xfe", b'{"version": 1, "x": "\\ud83d"}', 5, None, b"[" * 10 + b"]"])
def test_garbage_of_any_kind_is_a_decode_error(decode, data) -> None:
    with pytest.raises(MessageDecodeError):
        decode(data)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[" * 500 + "{" * 500 + '\\"[' * 100
    assert decode_turn_result(encode(result(text))).text == text
    assert msgspec.json.decode(encode(result(text)))["text"] == text
