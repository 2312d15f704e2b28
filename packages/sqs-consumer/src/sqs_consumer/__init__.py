"""SQS FIFO consumer Lambda: commands, typing, runtime invoke, render and deliver replies."""

from session_core import MAX_RECEIVE_COUNT

from ._attachments import attachment_key, stage_attachments
from ._batch import REDRIVES_ATTRIBUTE, REQUEUES_ATTRIBUTE, SqsRecord, batch_response, process_fifo_batch
from ._commands import HELP_TEXT, Channel, command_menu, help_text, run_command
from ._config import RUNTIME_MAX_TIMEOUT_S, ConsumerConfig, budget_caps_from_env
from ._consumer import Consumer
from ._delivery import Delivery, DeliveryRecords
from ._deps import ConsumerDeps, ObjectStore, QueueClient, TurnRunner
from ._errors import (
    AttachmentTooLargeError,
    ConsumerError,
    DeferredError,
    DeliveryFailedError,
    RuntimeInvokeError,
    TurnFailedError,
)
from ._failures import (
    MAX_REQUEUES,
    MODEL_WAIT_MAX_S,
    Failure,
    FailurePolicy,
    SqsClient,
    classify,
    retry_delay_s,
)
from ._money import usd
from ._outbox import read_outbox_file
from ._outcomes import MessageStatus, RecordOutcome, RecordStatus
from ._render import (
    TELEGRAM_MESSAGE_LIMIT,
    escape_html,
    html_to_plain,
    markdown_to_html,
    render_reply,
    split_html,
    split_plain,
)
from ._runtime import RuntimeClient, runtime_client_config
from ._timing import DELIVERY_RESERVE_S, ConsumerTiming
from ._typing import TYPING_REFRESH_S, TypingIndicator
from ._visibility_heartbeat import (
    HEARTBEAT_INTERVAL_S,
    HEARTBEAT_VISIBILITY_S,
    VisibilityClient,
    VisibilityHeartbeat,
    heartbeat_client_config,
    receipt_handles,
)
from ._voice import MAX_VOICE_SECONDS, VoiceNotTranscribed, VoiceTranscriber, voice_transcriber
from ._wording import (
    FAILED_NOTICE,
    FAILURE_WORDING,
    LAST_TRY_NOTICE,
    MISCONFIGURED_NOTICE,
    UNSENT_WORDING,
    failure_text,
    model_busy_notice,
    unsent_files_notice,
)

__all__ = [
    "DELIVERY_RESERVE_S",
    "FAILED_NOTICE",
    "FAILURE_WORDING",
    "HEARTBEAT_INTERVAL_S",
    "HEARTBEAT_VISIBILITY_S",
    "HELP_TEXT",
    "LAST_TRY_NOTICE",
    "MAX_RECEIVE_COUNT",
    "MAX_REQUEUES",
    "MAX_VOICE_SECONDS",
    "MISCONFIGURED_NOTICE",
    "MODEL_WAIT_MAX_S",
    "REDRIVES_ATTRIBUTE",
    "REQUEUES_ATTRIBUTE",
    "RUNTIME_MAX_TIMEOUT_S",
    "TELEGRAM_MESSAGE_LIMIT",
    "TYPING_REFRESH_S",
    "UNSENT_WORDING",
    "AttachmentTooLargeError",
    "Channel",
    "Consumer",
    "ConsumerConfig",
    "ConsumerDeps",
    "ConsumerError",
    "ConsumerTiming",
    "DeferredError",
    "Delivery",
    "DeliveryFailedError",
    "DeliveryRecords",
    "Failure",
    "FailurePolicy",
    "MessageStatus",
    "ObjectStore",
    "QueueClient",
    "RecordOutcome",
    "RecordStatus",
    "RuntimeClient",
    "RuntimeInvokeError",
    "SqsClient",
    "SqsRecord",
    "TurnFailedError",
    "TurnRunner",
    "TypingIndicator",
    "VisibilityClient",
    "VisibilityHeartbeat",
    "VoiceNotTranscribed",
    "VoiceTranscriber",
    "attachment_key",
    "batch_response",
    "budget_caps_from_env",
    "classify",
    "command_menu",
    "escape_html",
    "failure_text",
    "heartbeat_client_config",
    "help_text",
    "html_to_plain",
    "markdown_to_html",
    "model_busy_notice",
    "process_fifo_batch",
    "read_outbox_file",
    "receipt_handles",
    "render_reply",
    "retry_delay_s",
    "run_command",
    "runtime_client_config",
    "split_html",
    "split_plain",
    "stage_attachments",
    "unsent_files_notice",
    "usd",
    "voice_transcriber",
]
