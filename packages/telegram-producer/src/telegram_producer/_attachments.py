"""The photo, file or recording (voice, round video, audio, video) a message carries, as an
attachment of the turn."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from telegram_core import Attachment, Medium

from ._updates import ExternalReply, MessageContent, Recording


def attachments_of(msg: MessageContent, *, voice: bool = False) -> tuple[Attachment, ...]:
    """The photo (its largest size), the file or (with ``voice``: recordings are transcribed)
    the voice message, round video message, audio file or video ``msg`` carries, as the
    consumer fetches it."""
    if msg.photo:
        best = max(msg.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
        return (
            Attachment(
                kind="photo",
                file_id=best.file_id,
                file_unique_id=best.file_unique_id,
                file_name=f"{_named('photo', msg)}.jpg",
                mime_type="image/jpeg",
                file_size=best.file_size,
            ),
        )
    if msg.document is not None and msg.animation is None:  # a GIF's copy: unsupported
        doc = msg.document
        return (
            Attachment(
                kind="document",
                file_id=doc.file_id,
                file_unique_id=doc.file_unique_id,
                file_name=doc.file_name,
                mime_type=doc.mime_type,
                file_size=doc.file_size,
            ),
        )
    if voice:
        return _recording(msg)
    return ()


# The names the producer gives what is heard (the sender's own name of an audio file is not
# used: it would reach the agent's head lines), and their audio's usual file type.
_NAMED = {"voice": "voice", "video_note": "video", "audio": "audio", "video": "clip"}
_SUFFIXES = {
    "audio/ogg": ".ogg",
    "audio/opus": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/mp4": ".m4a",
    "audio/m4a": ".m4a",
    "audio/x-m4a": ".m4a",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
}
# A suffix of the sender's file name that can say nothing else: what an unusual MIME type
# ("audio/x-mpeg-3") leaves unnamed, so the agent's file is not "audio-42" with no type.
_PLAIN_SUFFIX = re.compile(r"\.[a-z0-9]{1,5}")
_USUAL_MIME = {"voice": "audio/ogg", "video_note": "video/mp4", "audio": "audio/mpeg", "video": "video/mp4"}


def _recording(msg: MessageContent) -> tuple[Attachment, ...]:
    """The voice message, round video message, audio file or video ``msg`` carries, to be
    heard (a video is heard, not watched: the model reads what is said in it)."""
    carried: tuple[tuple[Medium, Any], ...] = (
        ("voice", msg.voice),
        ("video_note", msg.video_note),
        ("audio", msg.audio),
        ("video", msg.video),
    )
    for medium, raw in carried:
        if raw is None:
            continue
        try:
            recording = msgspec.convert(raw, Recording)
        except msgspec.ValidationError:
            return ()  # a shape the Bot API does not document: "not supported yet", as before
        mime = "video/mp4" if medium == "video_note" else (recording.mime_type or _USUAL_MIME[medium])
        suffix = _SUFFIXES.get(mime.lower()) or _plain_suffix(recording.file_name)
        return (
            Attachment(
                kind="voice",
                medium=medium,
                file_id=recording.file_id,
                file_unique_id=recording.file_unique_id,
                file_name=f"{_named(_NAMED[medium], msg)}{suffix}",
                mime_type=mime,
                file_size=recording.file_size,
                duration_s=recording.duration,
            ),
        )
    return ()


def _named(what: str, msg: MessageContent) -> str:
    """The name the producer gives what ``msg`` carries: by its message's id ("photo-8"). A
    message of another chat ("Reply in another chat") is named as one, as its id may be the
    replying message's own (ids count per chat) or be missing: two photos of one turn were
    one "photo-8.jpg", and the agent took the user's for the other chat's."""
    if isinstance(msg, ExternalReply):
        return f"{what}-other-chat-{msg.message_id}" if msg.message_id else f"{what}-other-chat"
    return f"{what}-{msg.message_id}"


def _plain_suffix(file_name: str | None) -> str:
    """The sender's file name's suffix, lowercased, if it is a plain one ("" otherwise)."""
    _, dot, suffix = (file_name or "").rpartition(".")
    suffix = f".{suffix.lower()}"
    return suffix if dot and _PLAIN_SUFFIX.fullmatch(suffix) else ""
