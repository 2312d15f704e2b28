"""Provider errors (botocore) turned into session-core's StorageError, one way for every module."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from ._errors import StorageError


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
