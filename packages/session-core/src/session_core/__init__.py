"""Shared core of the agentbot Lambdas: session keys, boundary models, storage, logging."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._albums import AlbumParts, AlbumVerdict, GatheredAlbum, forward_album_id
    from ._approvals import (
        APPROVAL_CHOICES,
        Approval,
        ApprovalChoice,
        ApprovalNotPending,
        ApprovalOutcome,
        ApprovalRequest,
        Approvals,
        Grant,
        grant_token,
        new_approval_id,
    )
    from ._attempt_marks import AttemptMarks
    from ._aws_errors import MISSING_OBJECT_CODES, aws_error_code, retry_transaction_conflicts
    from ._backlog import BacklogVerdict, ChatBacklog
    from ._budgets import (
        BudgetCaps,
        BudgetExceeded,
        BudgetHold,
        BudgetLedger,
        BudgetPeriod,
        BudgetScope,
        Spend,
        period_end,
    )
    from ._clock import LeaseClock, SystemClock
    from ._comment_albums import CommentAlbums
    from ._config_report import report_config_problem, report_secret_access_denied
    from ._counted import counted, file_size_text
    from ._dynamo_table import (
        ConditionFailed,
        DynamoTable,
        check_update_id,
        item_float,
        item_int,
        item_key,
        item_str,
        number,
    )
    from ._errors import (
        ConfigError,
        CorruptTranscriptError,
        InvalidSessionKeyError,
        LeaseHeldError,
        LeaseLostError,
        MessageDecodeError,
        SecretAccessDeniedError,
        SessionCoreError,
        StaleHeadError,
        StorageError,
        TranscriptTooLargeError,
        UnsupportedVersionError,
    )
    from ._file_names import quoted_file_name, safe_file_name, unused_file_name
    from ._graphemes import shown_characters
    from ._json import (
        MAX_JSON_DEPTH,
        JsonTooDeepError,
        check_json_depth,
        decode_json,
        encode_json,
        json_event_bytes,
        well_formed,
    )
    from ._keys import SESSIONS_PREFIX, SessionKey, outbox_key, outbox_prefix, validate_tenant
    from ._lazy_exports import lazy_exports
    from ._leases import Lease
    from ._live_turns import MAX_PROGRESS_TEXT, LiveTurns, StopOutcome, Stopper, ToolActivity, TurnProgress
    from ._logging import (
        add_correlation,
        bind_correlation,
        bound_log_fields,
        configure_logging,
        current_log_fields,
        get_logger,
        with_log_context,
    )
    from ._markdown_fences import fenced_blocks, markdown_tail
    from ._metrics import CONFIGURATION_ERRORS_METRIC, emit_metric
    from ._model_answers import KEY_REFUSED
    from ._models import (
        TURN_VERSION,
        ErrorKind,
        ErrorReason,
        HistorySize,
        TurnRequest,
        TurnResult,
        UnsentFile,
        UnsentReason,
        Usage,
        decode_turn_request,
        decode_turn_result,
        decode_versioned,
        encode,
    )
    from ._newer_values import NewerValues, Tolerated, decode_tolerating
    from ._pastes import PasteParts, PasteVerdict, is_paste, paste_album_id
    from ._process_privacy import AWS_CREDENTIAL_VARIABLES, is_secret_variable, make_non_dumpable
    from ._process_tree import (
        Look,
        ProcessesRemainError,
        ProcessInfo,
        ancestors,
        become_subreaper,
        boot_ticks,
        children,
        descendants,
        kill_until_gone,
        look_at,
        process_table,
        runs,
    )
    from ._read_as_of import longest_read_past_expiry_s, transcripts_read_as_of
    from ._registry import SessionRecord, SessionRegistry
    from ._registry_keys import session_item_pk
    from ._rotating_secret import SECRET_REREAD_INTERVAL_S, FixedSecret, RotatingSecret, SecretSource
    from ._secret_masking import mask_command_secrets, mask_secrets
    from ._secrets import KEY_UNUSABLE, read_secret
    from ._settings import (
        DEFAULT_RETENTION_DAYS,
        DEFAULT_RUNTIME_MEMORY_MB,
        DEFAULT_TENANT,
        MAX_RECEIVE_COUNT,
        env_int,
        require_env,
        retention_days_from_env,
        tenant_from_env,
    )
    from ._staged_attachment import StagedAttachment
    from ._stop_for_waiting import LiveTurnsWithBacklog
    from ._transcript_file import TranscriptFile
    from ._transcript_format import S3_PREFIX as TRANSCRIPTS_PREFIX
    from ._transcript_format import InvalidTranscriptEntryError, StoredTranscript
    from ._transcript_items import S3_EXPIRY_MARGIN_DAYS
    from ._transcript_store import SessionListing, SessionSummary, TranscriptStore
    from ._turn_ledger import SaveOutcome, TurnLedger, TurnRecords, TurnSaved, TurnStart
    from ._turn_records import RecordedTurn
    from ._undelivered_files import UndeliveredFiles, undelivered_files
    from ._visible_text import (
        shown_command,
        shown_grant_rule,
        shows_nothing,
        utf16_len,
        visible_text,
        within_utf16,
    )
    from ._voice_settings import voice_transcription
else:  # imported on first use: see _lazy_exports
    from ._lazy_exports import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, __file__)
    del TYPE_CHECKING  # not an export

__version__ = "0.1.0"

__all__ = [
    "APPROVAL_CHOICES",
    "AWS_CREDENTIAL_VARIABLES",
    "CONFIGURATION_ERRORS_METRIC",
    "DEFAULT_RETENTION_DAYS",
    "DEFAULT_RUNTIME_MEMORY_MB",
    "DEFAULT_TENANT",
    "KEY_REFUSED",
    "KEY_UNUSABLE",
    "MAX_JSON_DEPTH",
    "MAX_PROGRESS_TEXT",
    "MAX_RECEIVE_COUNT",
    "MISSING_OBJECT_CODES",
    "S3_EXPIRY_MARGIN_DAYS",
    "SECRET_REREAD_INTERVAL_S",
    "SESSIONS_PREFIX",
    "TRANSCRIPTS_PREFIX",
    "TURN_VERSION",
    "AlbumParts",
    "AlbumVerdict",
    "Approval",
    "ApprovalChoice",
    "ApprovalNotPending",
    "ApprovalOutcome",
    "ApprovalRequest",
    "Approvals",
    "AttemptMarks",
    "BacklogVerdict",
    "BudgetCaps",
    "BudgetExceeded",
    "BudgetHold",
    "BudgetLedger",
    "BudgetPeriod",
    "BudgetScope",
    "ChatBacklog",
    "CommentAlbums",
    "ConditionFailed",
    "ConfigError",
    "CorruptTranscriptError",
    "DynamoTable",
    "ErrorKind",
    "ErrorReason",
    "FixedSecret",
    "GatheredAlbum",
    "Grant",
    "HistorySize",
    "InvalidSessionKeyError",
    "InvalidTranscriptEntryError",
    "JsonTooDeepError",
    "Lease",
    "LeaseClock",
    "LeaseHeldError",
    "LeaseLostError",
    "LiveTurns",
    "LiveTurnsWithBacklog",
    "Look",
    "MessageDecodeError",
    "NewerValues",
    "PasteParts",
    "PasteVerdict",
    "ProcessInfo",
    "ProcessesRemainError",
    "RecordedTurn",
    "RotatingSecret",
    "SaveOutcome",
    "SecretAccessDeniedError",
    "SecretSource",
    "SessionCoreError",
    "SessionKey",
    "SessionListing",
    "SessionRecord",
    "SessionRegistry",
    "SessionSummary",
    "Spend",
    "StagedAttachment",
    "StaleHeadError",
    "StopOutcome",
    "Stopper",
    "StorageError",
    "StoredTranscript",
    "SystemClock",
    "Tolerated",
    "ToolActivity",
    "TranscriptFile",
    "TranscriptStore",
    "TranscriptTooLargeError",
    "TurnLedger",
    "TurnProgress",
    "TurnRecords",
    "TurnRequest",
    "TurnResult",
    "TurnSaved",
    "TurnStart",
    "UndeliveredFiles",
    "UnsentFile",
    "UnsentReason",
    "UnsupportedVersionError",
    "Usage",
    "add_correlation",
    "ancestors",
    "aws_error_code",
    "become_subreaper",
    "bind_correlation",
    "boot_ticks",
    "bound_log_fields",
    "check_json_depth",
    "check_update_id",
    "children",
    "configure_logging",
    "counted",
    "current_log_fields",
    "decode_json",
    "decode_tolerating",
    "decode_turn_request",
    "decode_turn_result",
    "decode_versioned",
    "descendants",
    "emit_metric",
    "encode",
    "encode_json",
    "env_int",
    "fenced_blocks",
    "file_size_text",
    "forward_album_id",
    "get_logger",
    "grant_token",
    "is_paste",
    "is_secret_variable",
    "item_float",
    "item_int",
    "item_key",
    "item_str",
    "json_event_bytes",
    "kill_until_gone",
    "lazy_exports",
    "longest_read_past_expiry_s",
    "look_at",
    "make_non_dumpable",
    "markdown_tail",
    "mask_command_secrets",
    "mask_secrets",
    "new_approval_id",
    "number",
    "outbox_key",
    "outbox_prefix",
    "paste_album_id",
    "period_end",
    "process_table",
    "quoted_file_name",
    "read_secret",
    "report_config_problem",
    "report_secret_access_denied",
    "require_env",
    "retention_days_from_env",
    "retry_transaction_conflicts",
    "runs",
    "safe_file_name",
    "session_item_pk",
    "shown_characters",
    "shown_command",
    "shown_grant_rule",
    "shows_nothing",
    "tenant_from_env",
    "transcripts_read_as_of",
    "undelivered_files",
    "unused_file_name",
    "utf16_len",
    "validate_tenant",
    "visible_text",
    "voice_transcription",
    "well_formed",
    "with_log_context",
    "within_utf16",
]
