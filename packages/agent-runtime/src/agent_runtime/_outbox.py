"""Files the agent sends the user: what it left in ``outbox/`` of its working directory during
a turn, copied to S3 (``outbox_key``) for the consumer to send after the answer.

Tools write the outbox, and tools are hostile: the runtime, which may read more than they may,
must read nothing for them that they could not read themselves. So it sends only regular files
directly in ``outbox/``, opens the directory and each file without following a link, reads a
file through the descriptor it checked (never by its name again), and refuses a file with a
second name (a hard link may name a file the runtime may read and the tools may not). A device
or a pipe is refused unread (opened without blocking). At most ``MAX_FILES`` files, each up to
``MAX_FILE_BYTES`` (what Telegram takes from a bot) and not empty (Telegram sends no empty
file), the rest named in ``files_not_sent``.
Files go in the order of their names (an agent that numbers them is understood). It looks at
no more than ``MAX_ENTRIES`` of the outbox's entries, the first by name among the first
``MAX_NAMES_READ`` it lists: a tool can make millions, and every one named makes the turn's
result (stored in one DynamoDB item) larger: the others are only counted.
"""

from __future__ import annotations

import asyncio
import itertools
import mimetypes
import os
import stat
import unicodedata
from typing import TYPE_CHECKING, BinaryIO

from session_core import (
    SessionKey,
    StagedAttachment,
    UnsentFile,
    UnsentReason,
    get_logger,
    outbox_key,
    safe_file_name,
    unused_file_name,
)

from ._collaborators import S3Objects
from ._workspace import OUTBOX, SessionWorkspace

if TYPE_CHECKING:
    from ._outbox_at_end import OutboxAtEnd

log = get_logger(__name__)

MAX_FILES = 10
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_ENTRIES = 100
MAX_NAMES_READ = 10_000  # names only (no stat): a few milliseconds
_MAX_SHOWN_NAME_CHARS = 100

# (the files staged for the consumer to send, those that will not be sent and why, how many
# more entries were not looked at)
StagedOutbox = tuple[tuple[StagedAttachment, ...], tuple[UnsentFile, ...], int]


async def stage_outbox(
    s3: S3Objects,
    bucket: str,
    key: SessionKey,
    turn_id: int,
    workspace: SessionWorkspace,
    at_end: OutboxAtEnd | None = None,
) -> StagedOutbox:
    """Copy the outbox's files to S3 for the consumer to send, and say which will be sent and
    which not (and why). The runtime sends nothing itself: it never calls Telegram. A file
    that was not finished when the turn's processes were stopped (``at_end``, see
    ``_outbox_at_end``) is named "unfinished", not sent half-written."""
    return await asyncio.to_thread(_stage_outbox, s3, bucket, key, turn_id, workspace, at_end)


def _stage_outbox(
    s3: S3Objects,
    bucket: str,
    key: SessionKey,
    turn_id: int,
    workspace: SessionWorkspace,
    at_end: OutboxAtEnd | None,
) -> StagedOutbox:
    outbox = _open_outbox(workspace)
    if outbox is None:
        return (), (), 0
    sent: list[StagedAttachment] = []
    unsent: list[UnsentFile] = []
    used: set[str] = set()
    try:
        names, not_looked_at = listed_entries(outbox)
        for name in names:
            shown = _shown_name(name)
            opened = _open_own_file(outbox, name)
            if isinstance(opened, str):
                unsent.append(UnsentFile(file_name=shown, reason=opened))
                continue
            file, size = opened
            with file:
                if at_end is not None and not at_end.finished(name, os.fstat(file.fileno())):
                    unsent.append(UnsentFile(file_name=shown, reason="unfinished"))
                    continue
                if size == 0:  # Telegram refuses it: named for what it is, not as a failure
                    unsent.append(UnsentFile(file_name=shown, reason="empty"))
                    continue
                if len(sent) == MAX_FILES:
                    unsent.append(UnsentFile(file_name=shown, reason="too_many"))
                    continue
                # What it held when checked: a tool still writing cannot make it any bigger.
                data = file.read(size)
            safe_name = unused_file_name(safe_file_name(name, f"file-{len(sent) + 1}"), used)
            s3_key = outbox_key(key, turn_id, safe_name)
            mime_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            try:
                s3.put_object(Bucket=bucket, Key=s3_key, Body=data, ContentType=mime_type)
            except Exception as exc:  # botocore ClientError / BotoCoreError, after its retries
                # The answer is paid for and must be recorded: the file is named as not sent.
                log.warning("turn.outbox_upload_failed", error_type=type(exc).__name__)
                unsent.append(UnsentFile(file_name=shown, reason="failed"))
                continue
            sent.append(StagedAttachment(s3_key=s3_key, file_name=shown, mime_type=mime_type, size=len(data)))
    finally:
        os.close(outbox)
    if sent or unsent:
        log.info("turn.outbox", sent=len(sent), not_sent=len(unsent) + not_looked_at)
    return tuple(sent), tuple(unsent), not_looked_at


def _open_outbox(workspace: SessionWorkspace) -> int | None:
    """The outbox directory, opened without following a link (None: there is none to send)."""
    try:
        cwd = os.open(workspace.cwd, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.open(OUTBOX, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cwd)
    except OSError:  # none, or a link or a file in its place: nothing is sent
        return None
    finally:
        os.close(cwd)


def entry_names(outbox: int) -> list[str]:
    """The first ``MAX_ENTRIES`` names, sorted, of the first ``MAX_NAMES_READ`` entries the
    outbox lists (all of them, unless a tool made thousands)."""
    return listed_entries(outbox)[0]


def listed_entries(outbox: int) -> tuple[list[str], int]:
    """``entry_names``, and how many more entries were listed but are not looked at."""
    with os.scandir(outbox) as entries:
        names = sorted(entry.name for entry in itertools.islice(entries, MAX_NAMES_READ + 1))
    if len(names) > MAX_ENTRIES:
        log.warning("turn.outbox_entries_ignored", listed=len(names), looked_at=MAX_ENTRIES)
    return names[:MAX_ENTRIES], max(0, len(names) - MAX_ENTRIES)


def _open_own_file(outbox: int, name: str) -> tuple[BinaryIO, int] | UnsentReason:
    """Regular file ``name`` in the outbox, open, and its size; why it is not sent otherwise:
    "too_large", "folder" (the user can ask for it zipped), or "not_a_file" (a link, a pipe, a
    device, a file of two names)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=outbox)
    except OSError:
        return "not_a_file"
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1 and info.st_size <= MAX_FILE_BYTES:
        return os.fdopen(fd, "rb"), info.st_size
    os.close(fd)
    if stat.S_ISDIR(info.st_mode):
        return "folder"
    return "too_large" if stat.S_ISREG(info.st_mode) and info.st_nlink == 1 else "not_a_file"


def _shown_name(name: str) -> str:
    """The name the user sees: the tool's, without what a chat cannot show (control and
    format characters), at most 100 characters with its extension kept."""
    kept = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if len(kept) > _MAX_SHOWN_NAME_CHARS:
        stem, extension = os.path.splitext(kept)
        kept = stem[: _MAX_SHOWN_NAME_CHARS - len(extension)] + extension
    return kept or "file"
