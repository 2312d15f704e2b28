"""A run that failed because the model did not answer, as the model proxy saw its calls: it
accepted them and sent nothing (``MODEL_SILENCE_S``), its endpoint could not be connected to,
or it refused them as busy and said how long to wait (a 429 or 529 with ``retry-after``).

Silent: not retried. The CLI already tried again within the turn, and the proxy ended the turn
at the second silent call, so the user has waited minutes; the queue's five tries would make
that half an hour of "typing…". The user is told to send the message again; the operator gets
a log line and the metric ``Agentbot/ModelSilent``. Unreachable: retried as any model error (a
network path may come back; connecting fails in seconds; not before a wait the model asked of
a call that reached it), the user told at the last try that
the bot could not reach the model; the operator gets a log line and ``Agentbot/ModelUnreachable``
for each try, and the dead letter. Busy: retried, but not before the wait the model asked for
(the consumer puts the message off that long and tells the user)."""

from __future__ import annotations

import msgspec
from session_core import TurnResult, emit_metric, get_logger

from ._usage_meter import MeteredSpend

log = get_logger("agent_runtime._turn")

MODEL_SILENT_METRIC = "ModelSilent"
MODEL_UNREACHABLE_METRIC = "ModelUnreachable"


def unanswered(failed: TurnResult, spend: MeteredSpend, *, tenant: str) -> TurnResult:
    """``failed`` (a retryable model error) told apart by what the proxy saw of its calls."""
    if spend.silent_calls:
        log.warning(
            "turn.model_silent",
            silent_calls=spend.silent_calls,
            silence_s=spend.silence_s,
            setting=spend.silence_setting,
        )
        emit_metric(MODEL_SILENT_METRIC, 1, unit="Count", tenant=tenant)
        return msgspec.structs.replace(failed, error_reason="model_silent", retryable=False)
    if spend.unreachable_calls:
        log.warning(
            "turn.model_unreachable",
            unreachable_calls=spend.unreachable_calls,
            retry_after_s=spend.retry_after_s,
        )
        emit_metric(MODEL_UNREACHABLE_METRIC, 1, unit="Count", tenant=tenant)
        # A call that did connect may have been asked to wait: a retry sooner is refused again.
        return msgspec.structs.replace(
            failed, error_reason="model_unreachable", retry_after_s=spend.retry_after_s
        )
    if spend.retry_after_s is not None:
        log.warning("turn.model_asks_to_wait", retry_after_s=spend.retry_after_s)
        return msgspec.structs.replace(failed, retry_after_s=spend.retry_after_s)
    return failed
