"""The operator's limits on one turn, each with the setting that sets it. A run one of them
stopped before it wrote anything is answered (the user told which limit, the operator warned),
not dead-lettered: any retry or `dlq redrive` pays the model again for a run the same limit
stops again, and the dead-letter alarm is for what the operator must look into."""

from __future__ import annotations

from collections.abc import Mapping

from session_core import ErrorReason

# Where the operator changes each limit (named in the warning the consumer logs).
TURN_LIMIT_SETTINGS: Mapping[ErrorReason, str] = {
    "max_budget": "MAX_TURN_COST_USD (the MaxTurnCostUsd parameter)",
    "max_turns": "max_turns in claude-config/agents.json (the main agent's)",
    # The runtime's deadline: its own function's, below the consumer's (which Lambda caps at 900 s).
    "timeout": "the runtime function's Timeout in infra/template.yaml (below the consumer's 900 s)",
    # What one chat's files may take of the runtime's disk; another try fills it again.
    "disk_limit": "the runtime function's SESSION_DISK_LIMIT_MB in infra/template.yaml",
}


# A timeout whose deadline was the consumer's (``TurnResult.timed_out_by`` "caller"): the
# runtime's Timeout did not stop it; the consumer's invocation had gone mostly before the turn.
CONSUMER_TIME_SETTING = (
    "the consumer function's Timeout in infra/template.yaml (900 s, Lambda's maximum), shared "
    "with what came before the turn: a wait for the chat's previous turn (up to the runtime "
    "function's Timeout; a lower one leaves more to the next turn) or a voice transcription"
)


def limit_setting(reason: ErrorReason, *, timed_out_by: str | None = None) -> str:
    """Where the operator changes the limit that stopped a run of ``reason``;
    ``timed_out_by``: the result's, for a timeout (the consumer's deadline or the runtime's)."""
    if reason == "timeout" and timed_out_by == "caller":
        return CONSUMER_TIME_SETTING
    return TURN_LIMIT_SETTINGS[reason]


def stopped_by_turn_limit(reason: ErrorReason, *, retryable: bool) -> bool:
    """Whether a failed turn of ``reason`` is one of the operator's limits at work: a run it
    stopped, which any retry would pay for again. A retryable timeout (its deadline passed
    before the model was paid, e.g. a long wait for a busy session) is no such stop."""
    return reason in TURN_LIMIT_SETTINGS and not retryable
