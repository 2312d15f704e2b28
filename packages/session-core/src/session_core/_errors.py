"""The one error family of session-core; callers branch on the class and its attributes."""

from __future__ import annotations


class SessionCoreError(Exception):
    """Base of every error session-core raises on purpose.

    ``retryable`` tells the consumer whether the SQS record should be retried
    (True) or acknowledged with a message to the user (False).
    """

    retryable: bool = False


class InvalidSessionKeyError(SessionCoreError, ValueError):
    """Raised when a session key part is empty, too long or has characters outside its alphabet."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"invalid session key {field}={value!r}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class MessageDecodeError(SessionCoreError, ValueError):
    """Raised when a queue envelope, turn request or turn result cannot be decoded."""

    def __init__(self, model: str, detail: str) -> None:
        super().__init__(f"cannot decode {model}: {detail}")
        self.model = model
        self.detail = detail


class UnsupportedVersionError(MessageDecodeError):
    """Raised when a message carries a schema version this code does not understand."""

    def __init__(self, model: str, version: object, supported: tuple[int, ...]) -> None:
        super().__init__(model, f"version {version!r} is not supported (supported: {supported})")
        self.version = version
        self.supported = supported


class ConfigError(SessionCoreError):
    """Raised at start-up when a required setting is missing or malformed; names the setting."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"setting {setting}: {reason}")
        self.setting = setting
        self.reason = reason


class StorageError(SessionCoreError):
    """Raised when S3 or DynamoDB fails in a way that a retry may cure (throttling, 5xx, network)."""

    retryable = True

    def __init__(self, operation: str, detail: str, *, error_code: str | None = None) -> None:
        super().__init__(f"{operation} failed: {detail}")
        self.operation = operation
        self.detail = detail
        self.error_code = error_code


class SecretAccessDeniedError(StorageError):
    """Raised when SSM refuses to give this function's role a secret parameter (IAM does not
    allow the parameter, or KMS the key it is encrypted with): ``setting`` is what to fix (the
    parameter, or the field naming it), ``reason`` how, never a value. Still retryable: a role's
    new permissions take seconds to reach a new container, so a denial right after a deploy
    passes by itself; the caller reports it as a configuration error on every try."""

    def __init__(self, setting: str, reason: str, *, error_code: str | None) -> None:
        super().__init__("read_secret", f"{setting}: {reason}", error_code=error_code)
        self.setting = setting
        self.reason = reason


class CorruptTranscriptError(SessionCoreError):
    """Raised when a stored transcript part cannot be read back; the stored data is left untouched."""

    def __init__(self, location: str, detail: str) -> None:
        super().__init__(f"corrupt transcript part at {location}: {detail}")
        self.location = location
        self.detail = detail


class TranscriptTooLargeError(SessionCoreError):
    """Raised by a load given ``max_bytes`` when the transcript is bigger, before its snapshot
    (nearly all of it) is read: the head and its tail say how big it is."""

    def __init__(self, key: str, size: int, max_bytes: int) -> None:
        super().__init__(f"transcript {key} holds {size} bytes of JSONL, more than the {max_bytes} asked for")
        self.key = key
        self.size = size
        self.max_bytes = max_bytes


class StaleHeadError(SessionCoreError):
    """Raised when a conditional write finds the head version moved on (another writer won)."""

    retryable = True

    def __init__(self, key: str, expected_version: int) -> None:
        super().__init__(f"head of {key} is no longer at version {expected_version}")
        self.key = key
        self.expected_version = expected_version


class LeaseHeldError(SessionCoreError):
    """Raised when another live turn holds the session's lease (the chat is busy)."""

    retryable = True

    def __init__(self, key: str, holder: str, expires_at: float) -> None:
        super().__init__(f"session {key} is busy: lease held by {holder} until {expires_at:.0f}")
        self.key = key
        self.holder = holder
        self.expires_at = expires_at


class LeaseLostError(SessionCoreError):
    """Raised when a lease we held expired and was taken, or was released, before we finished."""

    retryable = True

    def __init__(self, key: str, owner: str) -> None:
        super().__init__(f"lease on {key} held by {owner} was lost")
        self.key = key
        self.owner = owner
