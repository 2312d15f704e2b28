"""The result of a turn the user stopped, or that ended early after it wrote something or
finished a file in its outbox (its time ran out, its CLI died): what was written so far, marked
``stopped``, recorded like any answer (a retry replays it, the next message resumes after it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from session_core import TURN_VERSION, ErrorReason, SessionCoreError, TurnRequest, TurnResult, well_formed

from ._errors import AgentRuntimeError, UntrustedCliOutputError
from ._turn_state import RunEnd, RunOutcome
from ._usage_meter import MeteredSpend

if TYPE_CHECKING:
    from ._live_progress import LiveProgress


def early_answer(
    end: RunEnd, live: LiveProgress | None, written: str, outcome: RunOutcome
) -> Literal["user", "timeout", "disk_limit", "crashed"] | None:
    """Why a run that ended early has an answer to record, what it wrote so far: the user
    stopped it, or its time ran out, its files passed the disk limit or its CLI died (no
    result, no error of ours) after it
    wrote something (the user saw it grow) or finished a file in its outbox (the user gets
    it): neither is thrown away. None: it finished, or it failed with nothing written nor
    made (as before: an unrecorded error)."""
    if end is RunEnd.STOPPED and live is not None:
        return "user"
    made_files = outcome.outbox_at_end is not None and outcome.outbox_at_end.any_finished
    if not written.strip() and not made_files:
        return None
    if end is RunEnd.TIMED_OUT:
        return "timeout"
    if end is RunEnd.OVER_DISK_LIMIT:
        return "disk_limit"
    failure = outcome.failure
    if (
        end is RunEnd.FINISHED
        and outcome.result is None
        and failure is not None
        and not isinstance(failure, UntrustedCliOutputError | AgentRuntimeError | SessionCoreError)
    ):
        return "crashed"
    return None


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
