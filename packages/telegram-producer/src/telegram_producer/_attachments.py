"""The photo, file or voice message a message carries, as an attachment of the turn."""

from __future__ import annotations

import msgspec
from telegram_core import Attachment

from ._updates import MessageContent, Voice


def attachments_of(msg: MessageContent, *, voice: bool = False) -> tuple[Attachment, ...]:
    """The photo (its largest size), the file or (with ``voice``: voice messages are
    transcribed) the voice message ``msg`` carries, as the consumer fetches it."""
    if msg.photo:
        best = max(msg.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
        return (
            Attachment(
                kind="photo",
                file_id=best.file_id,
                file_unique_id=best.file_unique_id,
                file_name=f"photo-{msg.message_id}.jpg",
                mime_type="image/jpeg",
                file_size=best.file_size,
            ),
        )
    if msg.document is not None:
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
    if voice and msg.voice is not None:
        return _voice_message(msg)
    return ()


def _voice_message(msg: MessageContent) -> tuple[Attachment, ...]:
    try:
        note = msgspec.convert(msg.voice, Voice)
    except msgspec.ValidationError:
        return ()  # a shape the Bot API does not document: "not supported yet", as before
    return (
        Attachment(
            kind="voice",
            file_id=note.file_id,
            file_unique_id=note.file_unique_id,
            file_name=f"voice-{msg.message_id}.ogg",
            mime_type=note.mime_type or "audio/ogg",
            file_size=note.file_size,
            duration_s=note.duration,
        ),
    )
