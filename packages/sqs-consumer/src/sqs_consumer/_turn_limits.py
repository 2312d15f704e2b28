"""The operator's limits on one turn, each with the setting that sets it. A run one of them
stopped before it wrote anything is answered (the user told which limit, the operator warned),
not dead-lettered: any retry or `dlq redrive` pays the model again for a run the same limit
stops again, and the dead-letter alarm is for what the operator must look into."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from session_core import ErrorReason, TurnResult

# Where the operator changes each limit (named in the warning the consumer logs).
TURN_LIMIT_SETTINGS: Mapping[ErrorReason, str] = {
    "max_budget": "MAX_TURN_COST_USD (the MaxTurnCostUsd parameter)",
    "max_turns": "max_turns in claude-config/agents.json (the main agent's)",
    # The runtime's deadline: its own function's, below the consumer's (which Lambda caps at 900 s).
    "timeout": "the runtime function's Timeout in infra/template.yaml (below the consumer's 900 s)",
    # What one chat's files may take of the runtime's disk; another try fills it again.
    "disk_limit": "the runtime function's SESSION_DISK_LIMIT_MB in infra/template.yaml",
}


# A timeout whose deadline was the consumer's (``TurnResult.timed_out_by`` "caller") after a
# wait before the turn: the runtime's Timeout did not stop it; the wait took the consumer's time.
CONSUMER_TIME_SETTING = (
    "the consumer function's Timeout in infra/template.yaml (900 s, Lambda's maximum), shared "
    "with what came before the turn: a wait for the chat's previous turn (up to the runtime "
    "function's Timeout; a lower one leaves more to the next turn) or a voice transcription"
)

# A timeout whose deadline was the consumer's with no wait worth the name before the turn: the
# consumer's own time, less what it keeps for delivery, is shorter than the runtime's.
CONSUMER_DEADLINE_SETTING = (
    "the consumer function's Timeout in infra/template.yaml, less the delivery reserve it keeps "
    "after a turn (DELIVERY_RESERVE_S, 45 s), is shorter than the runtime function's Timeout: "
    "keep the runtime's below that (840 s of the consumer's 900 s)"
)

# A wait before the turn (the chat's previous turn while the session was busy, a voice
# transcription, the chat's earlier records in the batch) is told as what cut it only when it
# took at least this share of the invocation's time: with less, the turn would have had under a
# third more time without it and most likely run out all the same, so "send it again" would only
# pay the model again for the same stop. A share, not seconds: tests give the consumer 25 s.
WAIT_SHARE_THAT_CUTS = 0.25

# What cut a timed-out turn short: the runtime's own time, the consumer's deadline as set, or
# the consumer's deadline after a wait before the turn.
TimeoutCut = Literal["runtime", "consumer", "wait"]


def timeout_cut_by(result: TurnResult, *, waited_s: float, had_s: float) -> TimeoutCut | None:
    """What cut ``result``'s run, a timeout (None for any other result): ``waited_s``, how
    much of the invocation had gone before the runtime was invoked for it, against the
    seconds the caller's deadline fell short of the runtime's own (the result's
    ``caller_short_by_s``): a wait at least that long is what cut it, a shorter one left the
    turn short all the same (the consumer's Timeout as set). From a runtime older than that
    field: a wait of ``WAIT_SHARE_THAT_CUTS`` of ``had_s`` (what the invocation had left when
    its batch began)."""
    if result.error_reason != "timeout":
        return None
    if result.timed_out_by != "caller":
        return "runtime"
    if result.caller_short_by_s is not None:
        return "wait" if waited_s >= result.caller_short_by_s else "consumer"
    return "wait" if waited_s >= WAIT_SHARE_THAT_CUTS * had_s else "consumer"


def told_as_a_wait(cut_by: TimeoutCut | None, *, waited_s: float, had_s: float) -> bool:
    """Whether the user is told the turn ran out of time after a wait ("send it again"): the
    wait cut it and took a real share of the invocation (``WAIT_SHARE_THAT_CUTS``); a shorter
    one left the turn most of its time, and it would most likely run out again."""
    return cut_by == "wait" and waited_s >= WAIT_SHARE_THAT_CUTS * had_s


def limit_setting(reason: ErrorReason, *, cut_by: TimeoutCut | None = None) -> str:
    """Where the operator changes the limit that stopped a run of ``reason``; ``cut_by``:
    what cut it, for a timeout (see ``timeout_cut_by``)."""
    if reason == "timeout" and cut_by == "wait":
        return CONSUMER_TIME_SETTING
    if reason == "timeout" and cut_by == "consumer":
        return CONSUMER_DEADLINE_SETTING
    return TURN_LIMIT_SETTINGS[reason]


def stopped_by_turn_limit(reason: ErrorReason, *, retryable: bool) -> bool:
    """Whether a failed turn of ``reason`` is one of the operator's limits at work: a run it
    stopped, which any retry would pay for again. A retryable timeout (its deadline passed
    before the model was paid, e.g. a long wait for a busy session) is no such stop."""
    return reason in TURN_LIMIT_SETTINGS and not retryable
