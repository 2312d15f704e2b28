"""Telling the operator what to fix: the log line ``config.invalid`` (``fix`` names the setting)
and one ``ConfigurationErrors`` metric (alarmed in infra/template.yaml), as the runtime does."""

from __future__ import annotations

from session_core import CONFIGURATION_ERRORS_METRIC, emit_metric, get_logger

log = get_logger(__name__)


def report_config_error(fix: str, reason: str, *, tenant: str, remedy: str | None = None) -> None:
    """Log what to fix and why (and ``remedy``, what to do in a deployed bot, in a field of
    its own: `agentbot dev` says its own), and count it in the metric."""
    said = {"remedy": remedy} if remedy else {}
    log.error("config.invalid", fix=fix, reason=reason, **said)
    emit_metric(CONFIGURATION_ERRORS_METRIC, 1, unit="Count", tenant=tenant)


def report_bot_token_refused(parameter: str, *, tenant: str) -> None:
    """Telegram refused the bot token the consumer read from ``parameter`` (after reading it
    again): the operator puts the bot's current token there; no redeploy is needed."""
    report_config_error(
        f"{parameter} (BOT_TOKEN_PARAMETER)",
        "Telegram refuses the bot token (revoked or mistyped)",
        tenant=tenant,
        remedy="put the bot's current token from @BotFather in the parameter (read again at most every 30 s)",
    )
