"""Producer settings, read once from the environment with errors that name the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from session_core import (
    DEFAULT_RETENTION_DAYS,
    DEFAULT_TENANT,
    env_int,
    require_env,
    retention_days_from_env,
    tenant_from_env,
    voice_transcription,
)
from telegram_core import GroupReplyMode, group_reply_mode, parse_id_list


@dataclass(frozen=True)
class ProducerConfig:
    """What the webhook needs to decide, dedupe and enqueue an update."""

    queue_url: str
    table: str
    secret_parameter: str
    tenant: str = DEFAULT_TENANT
    retention_days: int = DEFAULT_RETENTION_DAYS
    allowed_user_ids: frozenset[int] = frozenset()
    allowed_chat_ids: frozenset[int] = frozenset()
    # Who may answer any approval besides its asker: being allowed to talk to the bot is not
    # being trusted to let another person's command run.
    approver_user_ids: frozenset[int] = frozenset()
    group_reply_mode: GroupReplyMode = "mention"
    bot_username: str | None = None
    rate_limit_user_per_minute: int = 20
    rate_limit_chat_per_minute: int = 60
    chat_queue_limit: int = 10
    transcribes_voice: bool = False  # VOICE_TRANSCRIPTION is not "off": recordings start turns

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProducerConfig:
        """Read INBOUND_QUEUE_URL, SESSIONS_TABLE, WEBHOOK_SECRET_PARAMETER (all required),
        TENANT, SESSION_TTL_DAYS, ALLOWED_USER_IDS, ALLOWED_CHAT_IDS, APPROVER_USER_IDS, GROUP_REPLY_MODE,
        BOT_USERNAME, RATE_LIMIT_USER_PER_MINUTE (20), RATE_LIMIT_CHAT_PER_MINUTE (60; group
        chats), CHAT_QUEUE_LIMIT (10 messages waiting per chat; 0 turns a limit off) and
        VOICE_TRANSCRIPTION (off);
        raises ConfigError naming the first bad setting. ``environ`` (default ``os.environ``)
        lets `agentbot dev` check the settings it will start the producer with."""
        env = os.environ if environ is None else environ
        queue_url = require_env("INBOUND_QUEUE_URL", env)
        table = require_env("SESSIONS_TABLE", env)
        secret_parameter = require_env("WEBHOOK_SECRET_PARAMETER", env)
        mode = group_reply_mode(env.get("GROUP_REPLY_MODE", ""))
        username = env.get("BOT_USERNAME", "").strip().lstrip("@") or None
        tenant = tenant_from_env(env)
        return cls(
            queue_url=queue_url,
            table=table,
            secret_parameter=secret_parameter,
            tenant=tenant,
            retention_days=retention_days_from_env(env),
            allowed_user_ids=parse_id_list("ALLOWED_USER_IDS", env.get("ALLOWED_USER_IDS", "")),
            allowed_chat_ids=parse_id_list("ALLOWED_CHAT_IDS", env.get("ALLOWED_CHAT_IDS", "")),
            approver_user_ids=parse_id_list("APPROVER_USER_IDS", env.get("APPROVER_USER_IDS", "")),
            group_reply_mode=mode,
            bot_username=username,
            rate_limit_user_per_minute=env_int("RATE_LIMIT_USER_PER_MINUTE", 20, minimum=0, environ=env),
            rate_limit_chat_per_minute=env_int("RATE_LIMIT_CHAT_PER_MINUTE", 60, minimum=0, environ=env),
            chat_queue_limit=env_int("CHAT_QUEUE_LIMIT", 10, minimum=0, environ=env),
            transcribes_voice=voice_transcription(env.get("VOICE_TRANSCRIPTION", "")) is not None,
        )
