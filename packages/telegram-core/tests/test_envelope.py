"""The queue envelope crosses the producer → consumer boundary like every versioned message:
any text is written, and outside JSON of any version, nesting or shape is refused with
MessageDecodeError (the decoding rule itself is session-core's, tested there)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from session_core import JsonTooDeepError, MessageDecodeError, UnsupportedVersionError, well_formed
from telegram_core import (
    ENVELOPE_VERSION,
    Attachment,
    InboundMessage,
    QueueEnvelope,
    decode_envelope,
    encode_envelope,
)

any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=50)


def message(text: str = "hi") -> InboundMessage:
    return InboundMessage(
        update_id=7,
        session_key="default/77/0",
        kind="message",
        chat_id=77,
        chat_type="private",
        message_id=3,
        text=text,
        attachments=(Attachment(kind="document", file_id="f1", file_name="a.txt"),),
    )


def test_an_envelope_round_trips_and_unknown_versions_are_rejected() -> None:
    envelope = QueueEnvelope(version=ENVELOPE_VERSION, message=message(), enqueued_at=1.5)
    assert decode_envelope(encode_envelope(envelope)) == envelope
    assert decode_envelope(encode_envelope(envelope).decode()) == envelope  # an SQS body is a str
    future = encode_envelope(QueueEnvelope(version=2, message=message()))
    with pytest.raises(UnsupportedVersionError) as info:
        decode_envelope(future)
    assert info.value.version == 2 and info.value.model == "QueueEnvelope"
    with pytest.raises(UnsupportedVersionError):
        decode_envelope(b'{"message": {}}')
    with pytest.raises(MessageDecodeError):
        decode_envelope(b"not json")
    with pytest.raises(MessageDecodeError):
        decode_envelope(b'{"version": 1, "message": {"update_id": "seven"}}')


@settings(max_examples=100, deadline=None)
@given(text=any_text)
def test_any_text_crosses_the_queue(text: str) -> None:
    envelope = QueueEnvelope(version=ENVELOPE_VERSION, message=message(text))
    assert decode_envelope(encode_envelope(envelope)).message.text == well_formed(text)


@pytest.mark.parametrize(("levels", "kind"), [(65, "list"), (1_000, "list"), (200_000, "dict")])
@pytest.mark.parametrize("where", ["version", "unknown", "top"])
def test_deeply_nested_envelopes_are_refused_with_a_decode_error(levels: int, kind: str, where: str) -> None:
    opening, closing = (b"[", b"]") if kind == "list" else (b'{"k":', b"}")
    deep = opening * levels + b"1" + closing * levels
    data = {
        "version": b'{"version": ' + deep + b"}",
        "unknown": b'{"version": 1, "session_key": "default/77/0", "extra": ' + deep + b"}",
        "top": deep,
    }[where]
    with pytest.raises(JsonTooDeepError):
        decode_envelope(data)
    with pytest.raises(MessageDecodeError):
        decode_envelope(data.decode())


@pytest.mark.parametrize("data", [b"\xff\xfe", b'{"version": 1, "x": "\\ud83d"}', 5, None, b"[" * 10 + b"]"])
def test_garbage_of_any_kind_is_a_decode_error(data: object) -> None:
    with pytest.raises(MessageDecodeError):
        decode_envelope(data)  # type: ignore[arg-type]


def test_a_newer_producers_recording_of_an_unknown_medium_is_heard_as_a_voice_message() -> None:
    """A producer one release newer may queue a medium this consumer does not know yet: heard
    the same way, called a voice message, and the operator sees the skew."""
    from structlog.testing import capture_logs

    voice = Attachment(kind="voice", file_id="f2", medium="video_note")
    queued = encode_envelope(
        QueueEnvelope(
            version=ENVELOPE_VERSION, message=msgspec.structs.replace(message(), attachments=(voice,))
        )
    )
    newer = queued.replace(b'"video_note"', b'"some_future_value"')

    with capture_logs() as logs:
        decoded = decode_envelope(newer)

    assert decoded.message.attachments == (msgspec.structs.replace(voice, medium="voice"),)
    assert [(e["event"], e["field"], e["value"]) for e in logs] == [
        ("envelope.unknown_value", "message.attachments.medium", "some_future_value")
    ]
    with pytest.raises(MessageDecodeError):  # a medium that is no string is garbage, not newer
        decode_envelope(queued.replace(b'"video_note"', b"7"))


def test_a_replys_own_files_are_told_from_the_replied_ones_and_an_older_producers_reply_has_none() -> None:
    # A photo captioned "/new" sent as a reply to a document: its own photo, then the document.
    own = Attachment(kind="photo", file_id="p1")
    replied = Attachment(kind="document", file_id="d1", file_name="lease.pdf")
    reply = msgspec.structs.replace(
        message(), context="[In reply to …]", attachments=(own, replied), replied_attachments=1
    )
    assert decode_envelope(
        encode_envelope(QueueEnvelope(version=ENVELOPE_VERSION, message=reply))
    ).message.own_attachments == (own,)
    # Queued by the producer before this field: a reply's files were taken for the replied one's.
    older = msgspec.structs.replace(reply, replied_attachments=None)
    assert older.own_attachments == ()
    assert msgspec.structs.replace(older, context="").own_attachments == (own, replied)
