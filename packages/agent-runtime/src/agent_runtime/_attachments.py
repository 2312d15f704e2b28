"""The files a user sent, fetched from the session's S3 prefix into the turn's workspace (again
for the turn that makes a call they were sent with, once the user allowed it)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from session_core import (
    SessionKey,
    StagedAttachment,
    TurnRequest,
    counted,
    get_logger,
    quoted_file_name,
    safe_file_name,
)

from ._collaborators import S3Objects
from ._errors import AttachmentError
from ._workspace import SessionWorkspace, clear_attachments

log = get_logger(__name__)


async def stage_attachments(
    s3: S3Objects, bucket: str, key: SessionKey, request: TurnRequest, workspace: SessionWorkspace
) -> str:
    """Download the request's staged attachments into the workspace's ``attachments/`` and
    return the prompt listing them; AttachmentError for a key outside the session's prefix
    or a failed download."""
    clear_attachments(workspace)
    if not request.attachments:
        return request.prompt
    lines = []
    for index, attachment in enumerate(request.attachments):
        path = await _download(s3, bucket, key, attachment, _place_for(workspace, index, attachment))
        size = counted(path.stat().st_size, "byte")
        about = f"{_media_type(attachment.mime_type)}, {size}{_sent_as(attachment, path.name)}"
        lines.append(f"- attachments/{path.name} ({about})")
    return (
        request.prompt
        + "\n\n[The user attached files, saved in the working directory:\n"
        + "\n".join(lines)
        + "]"
    ).strip()


async def restore_attachments(
    s3: S3Objects,
    bucket: str,
    key: SessionKey,
    files: tuple[StagedAttachment, ...],
    workspace: SessionWorkspace,
) -> None:
    """Put ``files`` (those of the turn that asked for the call this turn answers) back in the
    workspace's ``attachments/``, by the names that turn told the agent: the allowed call works
    on them, and the workspace may be a new container's, or cleared since. One that cannot be
    had any more (expired), or whose name a file of this turn's own message has, is left out
    with a log line."""
    for index, attachment in enumerate(files):
        place = _place_for(workspace, index, attachment)
        if place.exists():  # a file this turn's own message brought: never replaced
            log.warning("turn.attachment_not_restored", reason="a file of this message has its name")
            continue
        try:
            await _download(s3, bucket, key, attachment, place)
        except AttachmentError as exc:
            log.warning("turn.attachment_not_restored", reason=exc.reason)


def _place_for(workspace: SessionWorkspace, index: int, attachment: StagedAttachment) -> Path:
    target = Path(workspace.attachments)
    target.mkdir(parents=True, exist_ok=True)
    name = safe_file_name(attachment.file_name, f"attachment-{index + 1}")
    path = target / name
    return target / f"{index + 1}-{name}" if path.exists() else path


async def _download(
    s3: S3Objects, bucket: str, key: SessionKey, attachment: StagedAttachment, path: Path
) -> Path:
    if not attachment.s3_key.startswith(key.s3_prefix) or ".." in attachment.s3_key.split("/"):
        raise AttachmentError(attachment.s3_key, f"is outside the session prefix {key.s3_prefix}")
    try:
        await asyncio.to_thread(s3.download_file, bucket, attachment.s3_key, str(path))
    except Exception as exc:  # botocore ClientError / transfer errors
        raise AttachmentError(
            attachment.s3_key, f"download failed: {type(exc).__name__}", retryable=True
        ) from exc
    return path


# A MIME type as RFC 6838 shapes it: the sender's app states a document's, and anything else
# ("text/plain) [From @admin] …") would be words of theirs in the runtime's line.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]{0,126}/[A-Za-z0-9][\w!#$&^.+-]{0,126}", re.ASCII)


def _media_type(stated: str | None) -> str:
    return stated if stated and _MEDIA_TYPE.fullmatch(stated) else "unknown type"


def _sent_as(attachment: StagedAttachment, written_as: str) -> str:
    """ ", sent as “договор.pdf”": the name the user sees in the chat, where the file's is not
    it (a name in another script, with spaces, or a second of the same name), so the agent
    can tell the user's files apart as the user names them."""
    sent_as = quoted_file_name(attachment.sent_as)
    return f", sent as “{sent_as}”" if sent_as and sent_as != written_as else ""
