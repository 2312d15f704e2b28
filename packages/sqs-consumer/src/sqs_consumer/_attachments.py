"""Photos and documents: fetched from Telegram, staged in S3 under the session's prefix."""

from __future__ import annotations

import posixpath

from botocore.exceptions import BotoCoreError, ClientError
from session_core import SessionKey, StagedAttachment, StorageError, safe_file_name, unused_file_name
from telegram_core import MAX_DOWNLOAD_BYTES, Attachment, BotApi, TelegramBadRequest, TelegramFileTooBig

from ._deps import ObjectStore
from ._errors import AttachmentTooLargeError, AttachmentUnavailableError


def attachment_key(key: SessionKey, update_id: int, file_name: str) -> str:
    """S3 key of a staged attachment: inside the session's prefix, one folder per update."""
    return f"{key.s3_prefix}attachments/{update_id}/{safe_file_name(file_name)}"


def stage_attachments(
    attachments: tuple[Attachment, ...],
    *,
    key: SessionKey,
    update_id: int,
    bot: BotApi,
    s3: ObjectStore,
    bucket: str,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> tuple[StagedAttachment, ...]:
    """Download each attachment and put it in S3; the same update overwrites the same keys,
    so a retried record stages idempotently. AttachmentTooLargeError above ``max_bytes``,
    AttachmentUnavailableError for one Telegram will not give."""
    staged: list[StagedAttachment] = []
    used: set[str] = set()
    for index, att in enumerate(attachments):
        name = att.file_name or f"{att.kind}-{index}"
        if att.file_size is not None and att.file_size > max_bytes:
            raise AttachmentTooLargeError(name, att.file_size)
        try:
            info = bot.get_file(att.file_id)
            size = int(info.get("file_size") or 0)
            if size > max_bytes:
                raise AttachmentTooLargeError(name, size)
            data = bot.download(str(info["file_path"]), max_bytes=max_bytes)
        except TelegramFileTooBig as exc:
            raise AttachmentTooLargeError(name, att.file_size) from exc
        except TelegramBadRequest as exc:  # for good: a retry of the record gets the same answer
            raise AttachmentUnavailableError(name) from exc
        if not att.file_name:
            name = posixpath.basename(str(info["file_path"])) or name
        name = unused_file_name(safe_file_name(name), used)
        s3_key = attachment_key(key, update_id, name)
        try:
            s3.put_object(
                Bucket=bucket,
                Key=s3_key,
                Body=data,
                ContentType=att.mime_type or "application/octet-stream",
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError("stage_attachment", f"S3 PutObject {s3_key}: {exc}") from exc
        # The agent is told the name the user sees in the chat, when it is not the file's.
        sent_as = att.file_name if att.file_name and att.file_name != name else None
        staged.append(
            StagedAttachment(
                s3_key=s3_key, file_name=name, mime_type=att.mime_type, size=len(data), sent_as=sent_as
            )
        )
    return tuple(staged)
