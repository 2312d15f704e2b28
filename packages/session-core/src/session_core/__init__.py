"""Shared core of the agentbot Lambdas: session keys, boundary models, storage, logging."""

from ._errors import (
    ConfigError,
    CorruptTranscriptError,
    InvalidSessionKeyError,
    LeaseHeldError,
    LeaseLostError,
    MessageDecodeError,
    SessionCoreError,
    StaleHeadError,
    StorageError,
    UnsupportedVersionError,
)
from ._keys import SESSIONS_PREFIX, SessionKey
from ._logging import bind_correlation, configure_logging, get_logger
from ._models import (
    ENVELOPE_VERSION,
    TURN_VERSION,
    Attachment,
    InboundMessage,
    QueueEnvelope,
    StagedAttachment,
    TurnRequest,
    TurnResult,
    Usage,
    decode_envelope,
    decode_turn_request,
    decode_turn_result,
    encode,
)
from ._settings import env_int, require_env

__version__ = "0.1.0"

__all__ = [
    "ENVELOPE_VERSION",
    "SESSIONS_PREFIX",
    "TURN_VERSION",
    "Attachment",
    "ConfigError",
    "CorruptTranscriptError",
    "InboundMessage",
    "InvalidSessionKeyError",
    "LeaseHeldError",
    "LeaseLostError",
    "MessageDecodeError",
    "QueueEnvelope",
    "SessionCoreError",
    "SessionKey",
    "StagedAttachment",
    "StaleHeadError",
    "StorageError",
    "TurnRequest",
    "TurnResult",
    "UnsupportedVersionError",
    "Usage",
    "bind_correlation",
    "configure_logging",
    "decode_envelope",
    "decode_turn_request",
    "decode_turn_result",
    "encode",
    "env_int",
    "get_logger",
    "require_env",
]
