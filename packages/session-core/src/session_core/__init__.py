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
from ._json import (
    MAX_JSON_DEPTH,
    JsonTooDeepError,
    check_json_depth,
    decode_json,
    encode_json,
    json_event_bytes,
    well_formed,
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
from ._process_privacy import AWS_CREDENTIAL_VARIABLES, is_secret_variable, make_non_dumpable
from ._process_tree import (
    ProcessInfo,
    ancestors,
    become_subreaper,
    boot_ticks,
    descendants,
    kill_until_gone,
    live,
    process_table,
)
from ._registry import Lease, SessionRecord, SessionRegistry
from ._secrets import read_secret
from ._settings import env_int, require_env, retention_days_from_env, tenant_from_env
from ._transcript_format import InvalidTranscriptEntryError
from ._transcript_store import SessionListing, SessionSummary, TranscriptStore

__version__ = "0.1.0"

__all__ = [
    "AWS_CREDENTIAL_VARIABLES",
    "ENVELOPE_VERSION",
    "MAX_JSON_DEPTH",
    "SESSIONS_PREFIX",
    "TURN_VERSION",
    "Attachment",
    "ConfigError",
    "CorruptTranscriptError",
    "InboundMessage",
    "InvalidSessionKeyError",
    "InvalidTranscriptEntryError",
    "JsonTooDeepError",
    "Lease",
    "LeaseHeldError",
    "LeaseLostError",
    "MessageDecodeError",
    "ProcessInfo",
    "QueueEnvelope",
    "SessionCoreError",
    "SessionKey",
    "SessionListing",
    "SessionRecord",
    "SessionRegistry",
    "SessionSummary",
    "StagedAttachment",
    "StaleHeadError",
    "StorageError",
    "TranscriptStore",
    "TurnRequest",
    "TurnResult",
    "UnsupportedVersionError",
    "Usage",
    "ancestors",
    "become_subreaper",
    "bind_correlation",
    "boot_ticks",
    "check_json_depth",
    "configure_logging",
    "decode_envelope",
    "decode_json",
    "decode_turn_request",
    "decode_turn_result",
    "descendants",
    "encode",
    "encode_json",
    "env_int",
    "get_logger",
    "is_secret_variable",
    "json_event_bytes",
    "kill_until_gone",
    "live",
    "make_non_dumpable",
    "process_table",
    "read_secret",
    "require_env",
    "retention_days_from_env",
    "tenant_from_env",
    "well_formed",
]
