"""The one way outside JSON and text cross a boundary: well-formed text out, bounded JSON in.

Python strings may hold lone surrogates (``json.loads`` makes them from ``"\\ud83d"``, and
the SDK hands such model output on), which no UTF-8 encoder accepts. Every writer encodes
through ``encode_json`` / ``well_formed``, which replace each lone surrogate with U+FFFD
(a well-formed surrogate pair is joined into its character); nothing raises on text.

Outside JSON (webhook bodies, queue records, Lambda events, objects read from S3) is decoded
through ``decode_json`` / ``json_event_bytes``: nesting deeper than ``MAX_JSON_DEPTH`` is
refused before any parser recurses, and every failure of the class (malformed JSON, wrong
types, bad UTF-8, recursion) becomes one ``MessageDecodeError`` that says what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from ._errors import MessageDecodeError

# Far above any message this system exchanges (a Telegram update nests < 10 levels).
MAX_JSON_DEPTH = 64

_T = TypeVar("_T")
_encoder = msgspec.json.Encoder()
_SURROGATE = re.compile("[\ud800-\udfff]")
# What nesting depends on: escapes (skipped whole), quotes and brackets.
_JSON_TOKEN = re.compile(rb'\\.|["\[\]{}]', re.DOTALL)


class JsonTooDeepError(MessageDecodeError):
    """Raised when outside JSON nests deeper than the limit (refused before it is parsed)."""

    def __init__(self, model: str, limit: int) -> None:
        super().__init__(model, f"JSON nests deeper than {limit} levels")
        self.limit = limit


def well_formed(text: str) -> str:
    """``text`` as valid Unicode: lone surrogates become U+FFFD, split pairs are joined."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def well_formed_value(value: Any) -> Any:
    """A copy of a JSON-like value (builtins) with every string, keys too, made well-formed."""
    if isinstance(value, str):
        return well_formed(value)
    if isinstance(value, dict):
        return {well_formed_value(k): well_formed_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [well_formed_value(v) for v in value]
    return value


def encode_json(value: Any) -> bytes:
    """UTF-8 JSON of ``value`` (a msgspec Struct or builtins); text that is not valid
    Unicode is written with U+FFFD in place of each lone surrogate instead of raising."""
    try:
        return _encoder.encode(value)
    except UnicodeEncodeError:
        return _encoder.encode(well_formed_value(msgspec.to_builtins(value)))


def check_json_depth(data: bytes, model: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise JsonTooDeepError if ``data``'s arrays and objects nest deeper than ``limit``.

    One linear pass without recursion (brackets inside strings do not count), so any input
    is safe to measure; most inputs have too few brackets to need even that.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return
    depth = 0
    in_string = False
    for token in _JSON_TOKEN.finditer(data):
        char = token.group()
        if char == b'"':
            in_string = not in_string
        elif in_string or len(char) == 2:  # inside a string, or an escape
            continue
        elif char in b"[{":
            depth += 1
            if depth > limit:
                raise JsonTooDeepError(model, limit)
        else:
            depth -= 1


def as_json_bytes(data: bytes | str, model: str) -> bytes:
    """Outside input as UTF-8 bytes; a ``str`` with lone surrogates (what ``json.loads``
    makes of ``"\\ud83d"``) is made well-formed, never an exception."""
    if isinstance(data, str):
        return well_formed(data).encode("utf-8")
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise MessageDecodeError(model, f"expected JSON text, got {type(data).__name__}")


def decode_json(
    data: bytes | str,
    decode: Callable[[bytes], _T],
    model: str,
    *,
    limit: int = MAX_JSON_DEPTH,
) -> _T:
    """``decode(data)`` for outside input, bounded: too deep, malformed, mistyped or not
    UTF-8 all become MessageDecodeError (``model`` names what was expected)."""
    raw = as_json_bytes(data, model)
    check_json_depth(raw, model, limit)
    try:
        return decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MessageDecodeError(model, str(exc)[:300]) from exc


def json_event_bytes(event: object, model: str, *, limit: int = MAX_JSON_DEPTH) -> bytes:
    """A Lambda event (already decoded by the runtime client) back as JSON bytes for a
    typed decoder: strings made well-formed, nesting bounded, never an exception but
    MessageDecodeError."""
    try:
        raw = encode_json(event)
    except (TypeError, msgspec.EncodeError, RecursionError) as exc:
        raise MessageDecodeError(model, f"event is not JSON data: {str(exc)[:200]}") from exc
    check_json_depth(raw, model, limit)
    return raw
