"""The queue envelope: one Telegram update reduced to what the consumer needs, as the producer
puts it on the FIFO queue. Versioned like every boundary message."""

from __future__ import annotations

from typing import Literal

import msgspec
from session_core import NewerValues, Tolerated, decode_tolerating, decode_versioned, encode_json

ENVELOPE_VERSION = 1


# What a ``voice`` attachment is (each heard the same way): a voice message, a round video
# message, an audio file, a video. Queued before these were heard: none, a voice message.
Medium = Literal["voice", "video_note", "audio", "video"]
AttachmentKind = Literal["photo", "document", "voice"]
MessageKind = Literal["message", "unsupported", "approval", "chat_moved"]
# Each as Telegram's apps name it to the user (and the agent is told it).
RECORDING_WORDS: dict[Medium, str] = {
    "voice": "voice message",
    "video_note": "video message",
    "audio": "audio file",
    "video": "video",
}


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """A file the user sent, as Telegram describes it (not yet downloaded). A ``voice``
    attachment (a recording: ``medium`` says which) is sent only where recordings are
    transcribed (VOICE_TRANSCRIPTION); ``duration_s`` is its length as Telegram states it."""

    kind: AttachmentKind
    file_id: str
    file_unique_id: str = ""
    file_name: str | None = None
    mime_type: str | None = None
    file_size: int | None = None
    duration_s: int | None = None
    medium: Medium = "voice"


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One Telegram update reduced to what the consumer needs.

    ``kind`` says what to do: ``message`` starts a turn (or a command),
    ``unsupported`` gets a short "not supported yet" (``unsupported_what`` names it),
    ``approval`` resumes the session's pending tool call ``approval_id`` once a button press
    decided it ([I]; ``message_id`` is then the message with the buttons), ``chat_moved``
    carries the conversation of the group ``moved_from_chat_id`` over to this chat (Telegram
    upgraded it to a supergroup, under a new id). Messages queued before [I] have neither and
    decode as before.
    """

    update_id: int
    session_key: str
    kind: MessageKind
    chat_id: int
    chat_type: str
    message_id: int
    thread_id: int = 0
    forum: bool = False  # the chat is a forum: its General topic (thread_id 0) is a topic too
    # The message is in a reply thread of a group without topics (a channel post's comments):
    # only a message quoting one of the thread's lands in it, so every part of the answer quotes
    # this one (the first alone would leave the rest outside the comments, unseen by readers).
    in_reply_thread: bool = False
    user_id: int | None = None
    user_name: str | None = None
    text: str = ""
    # What the message refers to (the message it replies to, where it was forwarded from),
    # shown to the agent before ``text``; apart from it, so "/new" as a reply is a command.
    context: str = ""
    attachments: tuple[Attachment, ...] = ()
    # How many of ``attachments`` (the last) are the replied message's, not the sender's own;
    # None in a message queued by an older producer, which did not say.
    replied_attachments: int | None = None
    forwarded: bool = False  # someone else's message passed on: never a command
    # The bot command the message gives ("new", "stop"...), as the producer read it from
    # Telegram's mark (a ``bot_command`` entity at the start): "" for none, so a "/new" shown
    # as code is words for the agent. None in a message queued by an older producer, which did
    # not say: its text is read then.
    command: str | None = None
    unsupported_what: str | None = None
    approval_id: str | None = None
    sent_at: int = 0
    # When an edit addressed the bot (its edit_date; 0: the message did as sent): what a late
    # answer is timed from, as the sender asked only then.
    addressed_at: int = 0
    # Messages answered together as one turn: Telegram's media_group_id (an album), or the
    # producer's name for messages forwarded together ("forwarded-<sender>-<second>").
    album_id: str | None = None
    moved_from_chat_id: int | None = None
    # A plain typed text (no file, no reply, no command, no paste): it may be the comment
    # typed in Telegram's forward dialog, which arrives just before the messages forwarded
    # with it (the consumer looks for them: see sqs_consumer's _forward_comment).
    may_be_comment: bool = False

    @property
    def own_attachments(self) -> tuple[Attachment, ...]:
        """The photos and files the sender sent with this message (not a replied one's). An
        older producer's message does not say: a reply's are then taken for the replied one's."""
        if self.replied_attachments is None:
            return () if self.context else self.attachments
        return self.attachments[: len(self.attachments) - self.replied_attachments]

    @property
    def counted_in_backlog(self) -> bool:
        """Whether the message takes a place in the chat's backlog (the producer's burst rule).
        A button press answers a turn that already ran and a move carries the conversation:
        neither may be refused for a full backlog, so neither is counted."""
        return self.kind not in ("approval", "chat_moved")


class QueueEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """What the producer puts on the FIFO queue."""

    version: int
    message: InboundMessage
    enqueued_at: float = 0.0


_envelope_decoder = msgspec.json.Decoder(QueueEnvelope)
_message_decoder = msgspec.json.Decoder(InboundMessage)
# What a consumer one release behind its producer (rolled back) reads of a kind it does not know
# yet: a message it cannot handle is "not supported yet", a file of a new kind is still a file
# for the agent, a recording of a new medium is heard as any recording. Logged: the operator sees
# the skew.
_MESSAGE_NEWER_FIELDS = (
    Tolerated.field("kind", MessageKind, "unsupported"),
    Tolerated.field("attachments.kind", AttachmentKind, "document"),
    Tolerated.field("attachments.medium", Medium, "voice"),
)
_MESSAGE_NEWER_VALUES = NewerValues("envelope.unknown_value", _MESSAGE_NEWER_FIELDS)
_ENVELOPE_NEWER_VALUES = NewerValues(
    "envelope.unknown_value",
    tuple(msgspec.structs.replace(field, path=f"message.{field.path}") for field in _MESSAGE_NEWER_FIELDS),
)


def encode_envelope(envelope: QueueEnvelope) -> bytes:
    """JSON bytes of a queue message body; lone surrogates are written as U+FFFD."""
    return encode_json(envelope)


def decode_envelope(data: bytes | str) -> QueueEnvelope:
    """Decode a queue message body (a kind or medium this release does not know yet read as
    the nearest it knows, logged); rejects unknown versions with UnsupportedVersionError."""
    return decode_versioned(
        data, _envelope_decoder, "QueueEnvelope", ENVELOPE_VERSION, _ENVELOPE_NEWER_VALUES
    )


def decode_inbound_message(data: bytes | str) -> InboundMessage:
    """Decode one message the producer kept apart from the queue (a part of an album or of the
    forwards a comment came with), read as ``decode_envelope`` reads the queued one;
    MessageDecodeError when it is malformed."""
    return decode_tolerating(data, _message_decoder, "InboundMessage", _MESSAGE_NEWER_VALUES)
