"""Telling the operator what to fix about the bot token (``session_core.report_config_problem``:
the log line ``config.invalid`` and one ``ConfigurationErrors`` metric, as the runtime does)."""

from __future__ import annotations

from session_core import report_config_problem
from telegram_core import BotApi


def report_bot_token_refused(parameter: str, *, tenant: str) -> None:
    """Telegram refused the bot token the consumer read from ``parameter`` (after reading it
    again): the operator puts the bot's current token there; no redeploy is needed."""
    report_config_problem(
        f"{parameter} (BOT_TOKEN_PARAMETER)",
        "Telegram refuses the bot token (revoked or mistyped)",
        tenant=tenant,
        remedy="put the bot's current token from @BotFather in the parameter (read again at most every 30 s)",
    )


def tell_bot_token_refused(bot: BotApi, parameter: str, *, tenant: str) -> None:
    """Telegram refused ``bot``'s token: the operator is told to put the current one in
    ``parameter``, unless SSM refused its re-read to the role (the rotated token under a KMS key
    the role may not use), which its own line told, naming the setting to fix: the operator has
    just put the token there."""
    if not bot.token_unreadable():
        report_bot_token_refused(parameter, tenant=tenant)
