"""Consumer settings, read once from the environment with errors that name the variable."""

from __future__ import annotations

import os
from dataclasses import dataclass

from session_core import ConfigError, require_env, retention_days_from_env, tenant_from_env

DEFAULT_TELEGRAM_API_BASE = "https://api.telegram.org"
# Mirrors MAX_RECEIVE_COUNT of infra/template.yaml and agentbot.provisioning (a test checks):
# the receive on which a still-failing record is answered for good instead of retried.
MAX_RECEIVE_COUNT = 3
# The longest a runtime invocation can last (Lambda's maximum); boto3 must wait longer.
RUNTIME_MAX_TIMEOUT_S = 900


@dataclass(frozen=True)
class ConsumerConfig:
    """What the consumer needs: where the runtime, Telegram, storage and the DLQ are."""

    runtime_function_name: str
    bot_token_parameter: str
    table: str
    bucket: str
    dead_letter_queue_url: str
    inbound_queue_url: str | None = None
    telegram_api_base: str = DEFAULT_TELEGRAM_API_BASE
    tenant: str = "default"
    retention_days: int = 25
    bot_username: str | None = None
    max_receive_count: int = MAX_RECEIVE_COUNT

    @classmethod
    def from_env(cls) -> ConsumerConfig:
        """Read RUNTIME_FUNCTION_NAME, BOT_TOKEN_PARAMETER, SESSIONS_TABLE, SESSIONS_BUCKET,
        DEAD_LETTER_QUEUE_URL (required), INBOUND_QUEUE_URL, TELEGRAM_API_BASE, TENANT, SESSION_TTL_DAYS and
        BOT_USERNAME; raises ConfigError naming the first bad setting."""
        env = os.environ
        base = env.get("TELEGRAM_API_BASE", "").strip().rstrip("/") or DEFAULT_TELEGRAM_API_BASE
        if not base.startswith(("https://", "http://")):
            raise ConfigError("TELEGRAM_API_BASE", f"must be an http(s) URL, got {base!r}")
        tenant = tenant_from_env()
        return cls(
            runtime_function_name=require_env("RUNTIME_FUNCTION_NAME"),
            bot_token_parameter=require_env("BOT_TOKEN_PARAMETER"),
            table=require_env("SESSIONS_TABLE"),
            bucket=require_env("SESSIONS_BUCKET"),
            dead_letter_queue_url=require_env("DEAD_LETTER_QUEUE_URL"),
            inbound_queue_url=env.get("INBOUND_QUEUE_URL", "").strip() or None,
            telegram_api_base=base,
            tenant=tenant,
            retention_days=retention_days_from_env(),
            bot_username=env.get("BOT_USERNAME", "").strip().lstrip("@") or None,
        )
