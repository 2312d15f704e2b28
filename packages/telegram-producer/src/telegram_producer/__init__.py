"""Telegram webhook Lambda: verify the secret, decode, decide, dedupe and enqueue updates."""

from telegram_core import (  # moved to telegram-core: the consumer shares them
    RateLimiter,
    RateVerdict,
    parse_id_list,
)

from ._approval import (
    ALREADY_REVOKED_TEXT,
    DECIDED_TEXT,
    NOT_VALID_TEXT,
    NOT_WAITING_TEXT,
    NOT_YOURS_TEXT,
    ButtonPress,
    button_press,
)
from ._config import ProducerConfig
from ._errors import ProducerError, WebhookSecretError
from ._routing import Decision, IgnoredReason, decide
from ._stop import NOTHING_TO_STOP_TEXT, STOPPING_TEXT, StopRequest, stop_request
from ._updates import HANDLED_UPDATE_TYPES, UNSUPPORTED_CONTENT, Update
from ._webhook import (
    MAX_TEXT_CHARS,
    RATE_LIMITED_METRIC,
    SECRET_HEADER,
    SECRET_RULE,
    UNPROCESSABLE_UPDATES_METRIC,
    Producer,
    check_secret,
    sqs_safe_json,
)

__all__ = [
    "ALREADY_REVOKED_TEXT",
    "DECIDED_TEXT",
    "HANDLED_UPDATE_TYPES",
    "MAX_TEXT_CHARS",
    "NOTHING_TO_STOP_TEXT",
    "NOT_VALID_TEXT",
    "NOT_WAITING_TEXT",
    "NOT_YOURS_TEXT",
    "RATE_LIMITED_METRIC",
    "SECRET_HEADER",
    "SECRET_RULE",
    "STOPPING_TEXT",
    "UNPROCESSABLE_UPDATES_METRIC",
    "UNSUPPORTED_CONTENT",
    "ButtonPress",
    "Decision",
    "IgnoredReason",
    "Producer",
    "ProducerConfig",
    "ProducerError",
    "RateLimiter",
    "RateVerdict",
    "StopRequest",
    "Update",
    "WebhookSecretError",
    "button_press",
    "check_secret",
    "decide",
    "parse_id_list",
    "sqs_safe_json",
    "stop_request",
]
