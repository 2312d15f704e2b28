"""Photos and documents: fetched from Telegram, staged in S3 under the session's prefix."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from botocore.exceptions import BotoCoreError, ClientError
from session_core import SessionKey, StagedAttachment, StorageError, safe_file_name, unused_file_name
from telegram_core import (
    MAX_DOWNLOAD_BYTES,
    Attachment,
    BotApi,
    InboundMessage,
    TelegramBadRequest,
    TelegramFileTooBig,
)

from ._deps import ObjectStore
from ._errors import AttachmentNotFetchedError, AttachmentTooLargeError, AttachmentUnavailableError
from ._wording import shown_name


@dataclass(frozen=True)
class NotFetched:
    """One of a message's files the bot could not get: the rest are answered without it.
    ``index``: its place among the message's attachments."""

    index: int
    attachment: Attachment
    error: AttachmentNotFetchedError


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
) -> tuple[tuple[StagedAttachment, ...], tuple[NotFetched, ...]]:
    """Download each attachment and put it in S3; the same update overwrites the same keys,
    so a retried record stages idempotently. Those above ``max_bytes``, or that Telegram will
    not give, are left out: returned as NotFetched."""
    staged: list[StagedAttachment] = []
    not_fetched: list[NotFetched] = []
    used: set[str] = set()
    for index, att in enumerate(attachments):
        name = att.file_name or f"{att.kind}-{index}"
        try:
            # a refusal's notice names it as the chat shows it
            data, file_path = _download(att, shown_name(att), bot=bot, max_bytes=max_bytes)
        except AttachmentNotFetchedError as exc:
            not_fetched.append(NotFetched(index=index, attachment=att, error=exc))
            continue
        if not att.file_name:
            name = posixpath.basename(file_path) or name
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
    return tuple(staged), tuple(not_fetched)


def fetched_only(
    parts: tuple[InboundMessage, ...], not_fetched: Sequence[NotFetched]
) -> tuple[InboundMessage, ...]:
    """``parts`` without the files not fetched (``NotFetched.index`` counts the parts' files
    in order, as the message joining them holds them): each file left is the staged one at
    its place, as ``transcripts_of`` pairs them."""
    if not not_fetched:
        return parts
    left_out = {nf.index for nf in not_fetched}
    kept, place = [], 0
    for part in parts:
        files = part.attachments
        left = tuple(att for i, att in enumerate(files, place) if i not in left_out)
        kept.append(msgspec.structs.replace(part, attachments=left))
        place += len(files)
    return tuple(kept)


def asks_without_its_files(parts: Sequence[InboundMessage], not_fetched: Sequence[NotFetched]) -> bool:
    """Whether a message none of whose files could be fetched still gets a turn: it says
    something (a caption) and every file is too large, which sending again would not cure
    (the agent is told which and why). While one is a file Telegram would not give, only the
    notice goes: sent again with its words, it may come through and both are answered."""
    all_too_large = all(isinstance(nf.error, AttachmentTooLargeError) for nf in not_fetched)
    return all_too_large and any(part.text.strip() for part in parts)


def _download(att: Attachment, name: str, *, bot: BotApi, max_bytes: int) -> tuple[bytes, str]:
    """The file's bytes and its Telegram path. AttachmentTooLargeError above ``max_bytes``,
    AttachmentUnavailableError for one Telegram will not give: refused, or described without
    the ``file_path`` to download it by (both named ``name``)."""
    if att.file_size is not None and att.file_size > max_bytes:
        raise AttachmentTooLargeError(name, att.file_size)
    try:
        info = bot.get_file(att.file_id)
        size = int(info.get("file_size") or 0)
        if size > max_bytes:
            raise AttachmentTooLargeError(name, size)
        file_path = info.get("file_path")
        if not isinstance(file_path, str) or not file_path:
            # Optional in the Bot API: absent for a file Telegram cannot serve, for good, as
            # a refusal is (a retry of the record gets the same answer).
            raise AttachmentUnavailableError(name)
        return bot.download(file_path, max_bytes=max_bytes), file_path
    except TelegramFileTooBig as exc:
        raise AttachmentTooLargeError(name, att.file_size) from exc
    except TelegramBadRequest as exc:  # for good: a retry of the record gets the same answer
        raise AttachmentUnavailableError(name) from exc
