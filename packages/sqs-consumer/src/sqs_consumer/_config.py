"""Consumer settings, read once from the environment with errors that name the variable."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from session_core import (
    DEFAULT_RETENTION_DAYS,
    DEFAULT_TENANT,
    MAX_RECEIVE_COUNT,
    BudgetCaps,
    ConfigError,
    env_int,
    require_env,
    retention_days_from_env,
    tenant_from_env,
    voice_transcription,
)
from telegram_core import TELEGRAM_API_BASE, GroupReplyMode, group_reply_mode, parse_id_list

from ._commands import CHANNELS, Channel

# Above any real budget, and the deploy template's limit (nine digits).
_MOST_USD = 1_000_000_000
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
    telegram_api_base: str = TELEGRAM_API_BASE
    tenant: str = DEFAULT_TENANT
    retention_days: int = DEFAULT_RETENTION_DAYS
    bot_username: str | None = None
    max_receive_count: int = MAX_RECEIVE_COUNT
    budgets: BudgetCaps = field(default_factory=BudgetCaps)
    channel: Channel = "telegram"
    chat_queue_limit: int = 10  # the producer's CHAT_QUEUE_LIMIT: the consumer releases its count
    voice_language: str | None = None  # VOICE_TRANSCRIPTION: None (off), "auto" or a language code
    group_reply_mode: GroupReplyMode = "mention"  # the producer's: what /help tells a group
    # The producer's lists, asked again before a queued message's turn (its sender may have
    # been taken off them while it waited).
    allowed_user_ids: frozenset[int] = frozenset()
    allowed_chat_ids: frozenset[int] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConsumerConfig:
        """Read RUNTIME_FUNCTION_NAME, BOT_TOKEN_PARAMETER, SESSIONS_TABLE, SESSIONS_BUCKET,
        DEAD_LETTER_QUEUE_URL (required), INBOUND_QUEUE_URL, TELEGRAM_API_BASE, TENANT, SESSION_TTL_DAYS and
        BOT_USERNAME, CHAT_QUEUE_LIMIT (10; must match the producer's), VOICE_TRANSCRIPTION (off;
        the producer's too), GROUP_REPLY_MODE (mention; the producer's too), ALLOWED_USER_IDS and
        ALLOWED_CHAT_IDS (the producer's too) and the budget caps
        (see ``budget_caps_from_env``); raises ConfigError naming the first bad setting.
        ``environ`` (default ``os.environ``) lets `agentbot dev` check the settings it will
        start the consumer with."""
        env = os.environ if environ is None else environ
        base = env.get("TELEGRAM_API_BASE", "").strip().rstrip("/") or TELEGRAM_API_BASE
        if not base.startswith(("https://", "http://")):
            raise ConfigError("TELEGRAM_API_BASE", f"must be an http(s) URL, got {base!r}")
        tenant = tenant_from_env(env)
        return cls(
            runtime_function_name=require_env("RUNTIME_FUNCTION_NAME", env),
            bot_token_parameter=require_env("BOT_TOKEN_PARAMETER", env),
            table=require_env("SESSIONS_TABLE", env),
            bucket=require_env("SESSIONS_BUCKET", env),
            dead_letter_queue_url=require_env("DEAD_LETTER_QUEUE_URL", env),
            inbound_queue_url=env.get("INBOUND_QUEUE_URL", "").strip() or None,
            telegram_api_base=base,
            tenant=tenant,
            retention_days=retention_days_from_env(env),
            bot_username=env.get("BOT_USERNAME", "").strip().lstrip("@") or None,
            budgets=budget_caps_from_env(env),
            channel=_channel(env),
            chat_queue_limit=env_int("CHAT_QUEUE_LIMIT", 10, minimum=0, environ=env),
            voice_language=voice_transcription(env.get("VOICE_TRANSCRIPTION", "")),
            group_reply_mode=group_reply_mode(env.get("GROUP_REPLY_MODE", "")),
            allowed_user_ids=parse_id_list("ALLOWED_USER_IDS", env.get("ALLOWED_USER_IDS", "")),
            allowed_chat_ids=parse_id_list("ALLOWED_CHAT_IDS", env.get("ALLOWED_CHAT_IDS", "")),
        )


def _channel(env: Mapping[str, str]) -> Channel:
    # Set only by `agentbot dev` for its terminal chat; a deployed consumer serves Telegram.
    raw = env.get("CHAT_CHANNEL", "").strip() or "telegram"
    for channel in CHANNELS:
        if raw == channel:
            return channel
    raise ConfigError("CHAT_CHANNEL", f"must be one of {', '.join(CHANNELS)}, got {raw!r}")


def budget_caps_from_env(env: Mapping[str, str]) -> BudgetCaps:
    """USD caps from BUDGET_{CHAT,USER,DEPLOYMENT}_{DAILY,MONTHLY}_USD and MAX_TURN_COST_USD;
    empty or 0 means no cap."""
    return BudgetCaps(
        chat_daily_usd=_usd(env, "BUDGET_CHAT_DAILY_USD"),
        chat_monthly_usd=_usd(env, "BUDGET_CHAT_MONTHLY_USD"),
        user_daily_usd=_usd(env, "BUDGET_USER_DAILY_USD"),
        user_monthly_usd=_usd(env, "BUDGET_USER_MONTHLY_USD"),
        deployment_daily_usd=_usd(env, "BUDGET_DEPLOYMENT_DAILY_USD"),
        deployment_monthly_usd=_usd(env, "BUDGET_DEPLOYMENT_MONTHLY_USD"),
        turn_usd=_usd(env, "MAX_TURN_COST_USD"),
    )


def _usd(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise ConfigError(name, f"must be an amount in USD such as 5 or 0.50, got {raw!r}")
    if value < 0:
        raise ConfigError(name, f"must be 0 (no cap) or a positive amount in USD, got {raw!r}")
    if value >= _MOST_USD:  # inf too
        raise ConfigError(name, f"must be below {_MOST_USD} USD (0 = no cap), got {raw!r}")
    return value or None
