"""A file staged in S3 under a session's prefix, between the consumer and the runtime."""

from __future__ import annotations

import msgspec


class StagedAttachment(msgspec.Struct, frozen=True, kw_only=True):
    """A file copied to S3 under the session's prefix: a user's attachment, for the runtime
    to fetch, or a file the agent sends the user (``TurnResult.files``), for the consumer.
    ``sent_as``: a user's document's name as its sender gave it, where ``file_name`` (what the
    runtime writes, ``safe_file_name``) is not it ("договор.pdf", staged as "file.pdf")."""

    s3_key: str
    file_name: str
    mime_type: str | None = None
    size: int = 0
    sent_as: str | None = None
