"""Messages that cross a boundary: the queue envelope (producer → consumer) and the
turn request/result (consumer ⇄ runtime). Each carries a schema version."""

from __future__ import annotations

from typing import Literal, TypeVar

import msgspec

from ._errors import UnsupportedVersionError
from ._json import as_json_bytes, decode_json, encode_json

ENVELOPE_VERSION = 1
TURN_VERSION = 1


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """A file the user sent, as Telegram describes it (not yet downloaded)."""

    kind: Literal["photo", "document"]
    file_id: str
    file_unique_id: str = ""
    file_name: str | None = None
    mime_type: str | None = None
    file_size: int | None = None


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One Telegram update reduced to what the consumer needs.

    ``kind`` says what to do: ``message`` starts a turn (or a command),
    ``unsupported`` gets a short "not supported yet" (``unsupported_what`` names it).
    """

    update_id: int
    session_key: str
    kind: Literal["message", "unsupported"]
    chat_id: int
    chat_type: str
    message_id: int
    thread_id: int = 0
    user_id: int | None = None
    user_name: str | None = None
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    unsupported_what: str | None = None
    sent_at: int = 0


class QueueEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """What the producer puts on the FIFO queue."""

    version: int
    message: InboundMessage
    enqueued_at: float = 0.0


class StagedAttachment(msgspec.Struct, frozen=True, kw_only=True):
    """An attachment copied to S3 under the session's prefix, for the runtime to fetch."""

    s3_key: str
    file_name: str
    mime_type: str | None = None
    size: int = 0


class TurnRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Ask the runtime to run (or replay) the turn that answers ``update_id``."""

    version: int
    session_key: str
    update_id: int
    prompt: str
    attachments: tuple[StagedAttachment, ...] = ()
    new_session: bool = False
    # Wall-clock time (epoch ms) by which the answer must be back with the caller, so the
    # runtime never outlasts the consumer that waits for it; None means the runtime's own limit.
    deadline_epoch_ms: int | None = None
    # The most this turn may spend (USD), passed to the SDK as max_budget_usd; None: no cap.
    max_cost_usd: float | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


ErrorKind = Literal["busy", "model_error", "bad_request", "internal"]


class TurnResult(msgspec.Struct, frozen=True, kw_only=True):
    """The runtime's answer. On failure ``error_kind`` is set and ``user_message`` is safe
    to show a user (never a stack trace); ``retryable`` says whether trying again may help."""

    version: int
    session_key: str
    update_id: int
    text: str = ""
    session_id: str | None = None
    # What this turn cost (USD), not the SDK session's running total.
    cost_usd: float = 0.0
    # The SDK session's running total after this turn (the CLI's ``total_cost_usd``): the
    # registry keeps it so the next turn of the same SDK session is priced by difference.
    session_cost_usd: float = 0.0
    usage: Usage = Usage()
    num_turns: int = 0
    duration_ms: int = 0
    error_kind: ErrorKind | None = None
    user_message: str | None = None
    retryable: bool = False
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.error_kind is None


class _Versioned(msgspec.Struct):
    version: object = None


_version_probe = msgspec.json.Decoder(_Versioned)
_envelope_decoder = msgspec.json.Decoder(QueueEnvelope)
_request_decoder = msgspec.json.Decoder(TurnRequest)
_result_decoder = msgspec.json.Decoder(TurnResult)


_T = TypeVar("_T")


def _decode(
    data: bytes | str, decoder: msgspec.json.Decoder[_T], model: str, version: int
) -> _T:
    raw = as_json_bytes(data, model)
    found = decode_json(raw, _version_probe.decode, model).version
    if found != version:
        raise UnsupportedVersionError(model, found, (version,))
    return decode_json(raw, decoder.decode, model)


def encode(message: QueueEnvelope | TurnRequest | TurnResult) -> bytes:
    """JSON bytes of a boundary message; text that is not valid Unicode (lone surrogates)
    is written with U+FFFD instead of raising."""
    return encode_json(message)


def decode_envelope(data: bytes | str) -> QueueEnvelope:
    """Decode a queue message body; rejects unknown versions with UnsupportedVersionError."""
    return _decode(data, _envelope_decoder, "QueueEnvelope", ENVELOPE_VERSION)


def decode_turn_request(data: bytes | str) -> TurnRequest:
    """Decode a runtime invoke payload; rejects unknown versions with UnsupportedVersionError."""
    return _decode(data, _request_decoder, "TurnRequest", TURN_VERSION)


def decode_turn_result(data: bytes | str) -> TurnResult:
    """Decode a runtime answer; rejects unknown versions with UnsupportedVersionError."""
    return _decode(data, _result_decoder, "TurnResult", TURN_VERSION)
