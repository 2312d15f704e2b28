"""Telegram webhook Lambda: verify the secret, decode, decide, dedupe and enqueue updates."""

from ._config import GroupReplyMode, ProducerConfig, parse_id_list
from ._errors import ProducerError, WebhookSecretError
from ._rate_limit import RateLimiter, RateVerdict
from ._updates import HANDLED_UPDATE_TYPES, UNSUPPORTED_CONTENT, Update
from ._webhook import (
    MAX_TEXT_CHARS,
    RATE_LIMITED_METRIC,
    SECRET_HEADER,
    Decision,
    Producer,
    check_secret,
    decide,
    sqs_safe_json,
)

__all__ = [
    "HANDLED_UPDATE_TYPES",
    "MAX_TEXT_CHARS",
    "RATE_LIMITED_METRIC",
    "SECRET_HEADER",
    "UNSUPPORTED_CONTENT",
    "Decision",
    "GroupReplyMode",
    "Producer",
    "ProducerConfig",
    "ProducerError",
    "RateLimiter",
    "RateVerdict",
    "Update",
    "WebhookSecretError",
    "check_secret",
    "decide",
    "parse_id_list",
    "sqs_safe_json",
]
