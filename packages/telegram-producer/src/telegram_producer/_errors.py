"""Errors of the webhook producer; all derive from ProducerError."""

from __future__ import annotations

from session_core import ConfigError


class ProducerError(Exception):
    """Base of every error the producer raises on purpose."""


class WebhookSecretError(ProducerError, ConfigError):
    """Raised at start-up when the webhook secret read from WEBHOOK_SECRET_PARAMETER is
    empty or not a valid Telegram ``secret_token``; the producer refuses to run open."""

    def __init__(self, reason: str) -> None:
        ConfigError.__init__(self, "WEBHOOK_SECRET_PARAMETER", reason)
