"""Files the agent sends: read from S3, where the runtime copied them under the session's
outbox (``session_core.outbox_key``), one at a time as delivery sends them."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from session_core import (
    MISSING_OBJECT_CODES,
    SessionKey,
    StagedAttachment,
    StorageError,
    get_logger,
    outbox_prefix,
)
from telegram_core import MAX_UPLOAD_BYTES

from ._deps import ObjectStore

log = get_logger(__name__)


def read_outbox_file(
    file: StagedAttachment, *, s3: ObjectStore, bucket: str, key: SessionKey
) -> bytes | None:
    """The bytes of ``file``; None when it cannot be sent: its object is gone (the session's
    objects expired), it lies outside this session's outbox, or it is larger than Telegram
    takes from a bot (each logged). StorageError when S3 fails in a way a retry may cure."""
    if not file.s3_key.startswith(outbox_prefix(key)):
        log.error("outbox_file_outside_session")  # the runtime never names one: a bug
        return None
    try:
        answer = s3.get_object(Bucket=bucket, Key=file.s3_key)
        body = answer["Body"]
        try:
            data: bytes = body.read(MAX_UPLOAD_BYTES + 1)
        finally:
            body.close()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in MISSING_OBJECT_CODES:
            log.warning("outbox_file_missing", error_code=code)
            return None
        raise StorageError(
            "read_outbox_file", f"S3 GetObject {file.s3_key}: {code}", error_code=code
        ) from exc
    except BotoCoreError as exc:
        raise StorageError("read_outbox_file", f"S3 GetObject {file.s3_key}: {type(exc).__name__}") from exc
    if len(data) > MAX_UPLOAD_BYTES:
        log.warning("outbox_file_too_large", size=len(data))
        return None
    return data
