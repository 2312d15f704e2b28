"""Telling the operator what to fix: the log line ``config.invalid`` (``fix`` names the setting)
and one ``ConfigurationErrors`` metric (alarmed in infra/template.yaml). Shared by the functions
that read their settings and secrets themselves (the consumer, the producer)."""

from __future__ import annotations

from ._errors import SecretAccessDeniedError
from ._logging import get_logger
from ._metrics import CONFIGURATION_ERRORS_METRIC, emit_metric

log = get_logger(__name__)


def report_config_problem(fix: str, reason: str, *, tenant: str, remedy: str | None = None) -> None:
    """Log what to fix and why (and ``remedy``, what to do in a deployed bot, in a field of
    its own: `agentbot dev` says its own), and count it in the metric."""
    said = {"remedy": remedy} if remedy else {}
    log.error("config.invalid", fix=fix, reason=reason, **said)
    emit_metric(CONFIGURATION_ERRORS_METRIC, 1, unit="Count", tenant=tenant)


def report_secret_access_denied(exc: SecretAccessDeniedError, *, setting: str, tenant: str) -> None:
    """SSM refused the parameter that ``setting`` names to this function's role: the parameter
    and the setting are what to fix, ``exc.reason`` how (never a value). Reported on every try,
    not once: the caller retries, as the role's new permissions arrive within seconds."""
    report_config_problem(f"{exc.setting} ({setting})", exc.reason, tenant=tenant)
