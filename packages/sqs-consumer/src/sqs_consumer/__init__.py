"""SQS FIFO consumer Lambda: commands, typing, runtime invoke, render and deliver replies."""

from ._attachments import attachment_key, safe_file_name, stage_attachments
from ._commands import COMMANDS, HELP_TEXT, parse_command, run_command
from ._config import MAX_RECEIVE_COUNT, RUNTIME_MAX_TIMEOUT_S, ConsumerConfig
from ._consumer import (
    DELIVERY_RESERVE_S,
    FAILED_NOTICE,
    MAX_REQUEUES,
    REQUEUES_ATTRIBUTE,
    Consumer,
    RecordOutcome,
    retry_delay_s,
)
from ._errors import (
    AttachmentTooLargeError,
    ConsumerError,
    DeferredError,
    DeliveryFailedError,
    RuntimeInvokeError,
    TelegramApiError,
    TurnFailedError,
)
from ._render import (
    TELEGRAM_MESSAGE_LIMIT,
    escape_html,
    html_to_plain,
    markdown_to_html,
    render_reply,
    split_html,
    split_plain,
    utf16_len,
)
from ._runtime import RuntimeClient, runtime_client_config
from ._telegram import MAX_DOWNLOAD_BYTES, BotApi
from ._typing import TYPING_REFRESH_S, TypingIndicator

__all__ = [
    "COMMANDS",
    "DELIVERY_RESERVE_S",
    "FAILED_NOTICE",
    "HELP_TEXT",
    "MAX_DOWNLOAD_BYTES",
    "MAX_RECEIVE_COUNT",
    "MAX_REQUEUES",
    "REQUEUES_ATTRIBUTE",
    "RUNTIME_MAX_TIMEOUT_S",
    "TELEGRAM_MESSAGE_LIMIT",
    "TYPING_REFRESH_S",
    "AttachmentTooLargeError",
    "BotApi",
    "Consumer",
    "ConsumerConfig",
    "ConsumerError",
    "DeferredError",
    "DeliveryFailedError",
    "RecordOutcome",
    "RuntimeClient",
    "RuntimeInvokeError",
    "TelegramApiError",
    "TurnFailedError",
    "TypingIndicator",
    "attachment_key",
    "escape_html",
    "html_to_plain",
    "markdown_to_html",
    "parse_command",
    "render_reply",
    "retry_delay_s",
    "run_command",
    "runtime_client_config",
    "safe_file_name",
    "split_html",
    "split_plain",
    "stage_attachments",
    "utf16_len",
]
