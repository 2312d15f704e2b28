"""Photos and documents: fetched from Telegram, staged in S3 under the session's prefix."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from session_core import Attachment, SessionKey, StagedAttachment, StorageError

from ._errors import AttachmentTooLargeError, TelegramApiError
from ._telegram import MAX_DOWNLOAD_BYTES, BotApi

_UNSAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(name: str | None, fallback: str = "file") -> str:
    """A file name that is one harmless path step (no '/', no leading dot, ≤ 100 chars)."""
    cleaned = _UNSAFE_NAME_RE.sub("_", posixpath.basename(name or "")).lstrip("._")[-100:]
    return cleaned or fallback


def attachment_key(key: SessionKey, update_id: int, file_name: str) -> str:
    """S3 key of a staged attachment: inside the session's prefix, one folder per update."""
    return f"{key.s3_prefix}attachments/{update_id}/{safe_file_name(file_name)}"


def stage_attachments(
    attachments: tuple[Attachment, ...],
    *,
    key: SessionKey,
    update_id: int,
    bot: BotApi,
    s3: Any,
    bucket: str,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> tuple[StagedAttachment, ...]:
    """Download each attachment and put it in S3; the same update overwrites the same keys,
    so a retried record stages idempotently. AttachmentTooLargeError above ``max_bytes``."""
    staged: list[StagedAttachment] = []
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
        except TelegramApiError as exc:
            if exc.kind == "file_too_big":
                raise AttachmentTooLargeError(name, att.file_size) from exc
            raise
        if not att.file_name:
            name = posixpath.basename(str(info["file_path"])) or name
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
        staged.append(
            StagedAttachment(
                s3_key=s3_key, file_name=safe_file_name(name), mime_type=att.mime_type, size=len(data)
            )
        )
    return tuple(staged)
