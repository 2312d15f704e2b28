"""The result of a turn the user stopped, or that ran out of time after it wrote something:
what was written so far, marked ``stopped``, recorded like any answer (a retry replays it, the
next message resumes after it)."""

from __future__ import annotations

from session_core import TURN_VERSION, ErrorReason, TurnRequest, TurnResult, well_formed

from ._usage_meter import MeteredSpend


def stopped_result(
    request: TurnRequest,
    *,
    text: str,
    session_id: str | None,
    resumed_total_usd: float,
    metered: MeteredSpend,
    duration_ms: int,
    reason: ErrorReason | None = None,
) -> TurnResult:
    """The TurnResult of a stopped run: by the user, or by a limit (``reason``).

    Its cost is what the model proxy saw (the killed CLI never reported a figure). The SDK
    session's running total stays at the resumed one (``resumed_total_usd``): the next turn's
    CLI restores its total from the transcript, which holds only the completed calls, so
    pricing that turn by difference counts at most a completed call of the stopped run again,
    never less than was spent.
    """
    return TurnResult(
        version=TURN_VERSION,
        session_key=request.session_key,
        turn_id=request.turn_id,
        text=well_formed(text.strip()),
        session_id=session_id,
        cost_usd=metered.cost_usd,
        session_cost_usd=resumed_total_usd,
        usage=metered.usage,
        num_turns=0,
        duration_ms=duration_ms,
        stopped=True,
        stop_reason=reason,
    )
