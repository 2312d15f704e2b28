"""Telling the operator about a permanent configuration error: a structured log line per thing
to fix and one CloudWatch metric (``Agentbot/ConfigurationErrors``, alarmed in
infra/template.yaml), once per container; and the turn's result that tells the consumer not to
retry."""

from __future__ import annotations

import time

from session_core import (
    CONFIGURATION_ERRORS_METRIC,
    TURN_VERSION,
    TurnRequest,
    TurnResult,
    emit_metric,
    get_logger,
)

from ._errors import ClaudeConfigError
from ._preflight import config_problem

log = get_logger(__name__)

CONFIG_ERROR_METRIC = CONFIGURATION_ERRORS_METRIC


def report_config_error(exc: BaseException, *, tenant: str) -> None:
    """Log what to fix (setting, or file and field: each one claude-config's check found) and
    count it in the metric. A ``remedy`` (what to do in a deployed bot) has a field of its own:
    `agentbot dev` shows the reason with its own (the shell's variable, a restart)."""
    for problem in exc.problems if isinstance(exc, ClaudeConfigError) else (exc,):
        where, reason = config_problem(problem)
        remedy = getattr(problem, "remedy", None)
        said = {"remedy": remedy} if remedy else {}
        log.error("config.invalid", fix=where, reason=reason, error=type(problem).__name__, **said)
    emit_metric(CONFIG_ERROR_METRIC, 1, unit="Count", tenant=tenant)


def config_error_result(request: TurnRequest, *, started: float | None = None) -> TurnResult:
    """A permanent, not retryable failure (the consumer words it for the user)."""
    elapsed = 0 if started is None else int((time.perf_counter() - started) * 1000)
    return TurnResult(
        version=TURN_VERSION,
        session_key=request.session_key,
        turn_id=request.turn_id,
        error_kind="config",
        retryable=False,
        duration_ms=elapsed,
    )
