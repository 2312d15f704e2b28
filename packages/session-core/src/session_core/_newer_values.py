"""Values of a known enumeration (a ``Literal`` field) that this release does not know yet, read
as a stated fallback instead of refusing the whole message.

A consumer and runtime one release apart exchange results (a deploy updates the runtime before
the consumer; an operator may roll one function back), and a runtime replays results another
release recorded. A value the newer release added (a new error reason, say) must not make the
older one refuse the result and lose its text, session id and usage with it: each field a
message's ``NewerValues`` lists reads an unknown string as its fallback, logged for the operator.
Anything else wrong (malformed JSON, a missing field, a wrong type, a value of a field not
listed) is refused as before.

The typed decoder runs first; only a message it refuses is read again as plain JSON, its
unknown values replaced, and converted to the same Struct, so what passes is as typed as ever.
"""

from __future__ import annotations

from typing import Any, TypeVar, get_args

import msgspec

from ._errors import MessageDecodeError
from ._json import as_json_bytes, decode_json
from ._logging import get_logger

_T = TypeVar("_T")
_log = get_logger(__name__)
_fields_decoder = msgspec.json.Decoder(dict[str, Any])
# A value longer than any enumeration's is no newer value but garbage: shown cut in the log.
_VALUE_SHOWN = 100


class Tolerated(msgspec.Struct, frozen=True):
    """A ``Literal`` field whose unknown string values read as ``fallback``. ``path`` names it
    from the message's top through objects and arrays of objects (``files_not_sent.reason``)."""

    path: str
    known: frozenset[str]
    fallback: str | None

    @classmethod
    def field(cls, path: str, literal: Any, fallback: str | None) -> Tolerated:
        """``path``, a field of type ``literal`` (or ``literal | None``), read as ``fallback``."""
        return cls(path, frozenset(get_args(literal)), fallback)


class NewerValues(msgspec.Struct, frozen=True):
    """The fields of one kind of message read so, and the warning each value read so logs
    (``result.unknown_value``): the operator sees that two functions run different releases."""

    event: str
    fields: tuple[Tolerated, ...]


def decode_tolerating(
    data: bytes | str, decoder: msgspec.json.Decoder[_T], model: str, newer: NewerValues
) -> _T:
    """``data`` decoded by ``decoder`` as ``model``; one refused only for unknown values of the
    ``newer`` fields decodes with each read as its fallback, and logged. Anything else refused
    raises MessageDecodeError as ``decode_json`` does."""
    raw = as_json_bytes(data, model)
    try:
        return decode_json(raw, decoder.decode, model)
    except MessageDecodeError as exc:
        if not newer.fields or not isinstance(exc.__cause__, msgspec.ValidationError):
            raise  # not JSON, or too deep: no field to read a fallback for
    fields = decode_json(raw, _fields_decoder.decode, model)
    return convert_tolerating(fields, decoder.type, model, newer)


def convert_tolerating(fields: dict[str, Any], model_type: type[_T], model: str, newer: NewerValues) -> _T:
    """``fields`` (a message read as plain JSON) as ``model_type``, the unknown values of the
    ``newer`` fields read as their fallbacks (logged once it converts); MessageDecodeError
    when it does not convert even so."""
    unknown = [(each.path, value) for each in newer.fields for value in _read_as_fallback(fields, each)]
    try:
        converted = msgspec.convert(fields, model_type)
    except msgspec.ValidationError as exc:
        raise MessageDecodeError(model, str(exc)[:300]) from exc
    for path, value in unknown:
        _log.warning(newer.event, model=model, field=path, value=value[:_VALUE_SHOWN])
    return converted


def _read_as_fallback(fields: dict[str, Any], tolerated: Tolerated) -> list[str]:
    """Replace, in place, the unknown values at ``tolerated.path``; answer those replaced."""
    *through, name = tolerated.path.split(".")
    objects: list[Any] = [fields]
    for step in through:
        found = [obj.get(step) for obj in objects if isinstance(obj, dict)]
        objects = [item for value in found for item in (value if isinstance(value, list) else [value])]
    replaced = []
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        value = obj.get(name)
        if isinstance(value, str) and value not in tolerated.known:
            obj[name] = tolerated.fallback
            replaced.append(value)
    return replaced
