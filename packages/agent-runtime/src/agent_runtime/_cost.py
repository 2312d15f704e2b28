"""What one turn cost, from the CLI's running total of the SDK session it continued."""

from __future__ import annotations

from session_core import get_logger

log = get_logger(__name__)


def turn_cost_usd(
    running_total_usd: float | None,
    *,
    session_id: str | None,
    resumed_id: str | None,
    resumed_total_usd: float,
) -> float:
    """The cost of the run that just ended.

    ``ResultMessage.total_cost_usd`` is the SDK session's running total (the CLI restores it
    from the transcript on resume), so a turn of the session we resumed costs the difference
    from the total recorded after its previous turn; a new SDK session costs its whole total.
    A total below the recorded one (the CLI lost count) is counted whole, never negative.
    """
    total = float(running_total_usd or 0.0)
    if session_id is None or session_id != resumed_id:
        return total
    if total < resumed_total_usd:
        log.warning("cost.running_total_went_back", total_usd=total, recorded_usd=resumed_total_usd)
        return total
    return total - resumed_total_usd
