"""Provider errors (botocore) turned into session-core's StorageError, one way for every module."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from ._errors import StorageError

_T = TypeVar("_T")
TRANSACTION_CONFLICT = "TransactionConflictException"
# What S3's GetObject answers for a key that is not there: 404, or 403 to a role that may not
# list the bucket (the consumer's).
MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404", "AccessDenied", "403"})


def aws_error_code(exc: ClientError) -> str:
    """The service's error code of a ClientError (e.g. ``ConditionalCheckFailedException``)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def storage_error(
    operation: str,
    exc: ClientError | BotoCoreError,
    *,
    context: str,
    permanent_codes: frozenset[str] = frozenset(),
) -> StorageError:
    """A StorageError for a failed AWS call: ``error_code`` is the service's code, or the
    exception's name for network-level errors; codes in ``permanent_codes`` are not retryable."""
    if isinstance(exc, ClientError):
        code = aws_error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = f"{code}: {exc.response.get('Error', {}).get('Message', '')} (HTTP {status})"
    else:
        code = type(exc).__name__
        detail = f"{code}: {exc}"
    error = StorageError(operation, f"{context}: {detail}" if context else detail, error_code=code)
    if code in permanent_codes:
        error.retryable = False
    return error


def retry_transaction_conflicts(call: Callable[[], _T], *, attempts: int = 3, pause_s: float = 0.05) -> _T:
    """``call()``, tried again (up to ``attempts`` times, pausing a little longer each time)
    while DynamoDB refuses it because another transaction holds an item for a moment: a plain
    write's ``TransactionConflictException``, or a transaction of ``call`` cancelled for a
    ``TransactionConflict`` alone (no condition of it failed). botocore retries neither. Any
    other error, or the last refusal, is raised as it is (a ClientError, or a StorageError
    made of one)."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except (ClientError, StorageError) as exc:
            if not _conflict_only(exc) or attempt == attempts:
                raise
            time.sleep(pause_s * attempt)
    raise AssertionError("unreachable")


def _conflict_only(exc: ClientError | StorageError) -> bool:
    if isinstance(exc, StorageError):
        return exc.error_code == TRANSACTION_CONFLICT
    code = aws_error_code(exc)
    if code != "TransactionCanceledException":
        return code == TRANSACTION_CONFLICT
    reasons = {r.get("Code") for r in exc.response.get("CancellationReasons") or []}
    return "TransactionConflict" in reasons and "ConditionalCheckFailed" not in reasons
