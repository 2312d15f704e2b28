"""The photo or file a message carries, as an attachment of the turn."""

from __future__ import annotations

from telegram_core import Attachment

from ._updates import MessageContent


def attachments_of(msg: MessageContent) -> tuple[Attachment, ...]:
    """The photo (its largest size) or the file ``msg`` carries, as the consumer fetches it."""
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
    return ()
