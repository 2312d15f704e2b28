"""A run that began a new SDK session (a chat's first turn, or its first after /new or an
expired history) and ended without a saved answer after its tools ran. Only a saved answer
named the chat's session, so nothing led back to this one: its retry began yet another
conversation and ran the tools again, and the next message was told nothing of them. The
registry names its session instead (the head stays): the retry resumes after its tools and the
next message leaves it out and is told what ran (``_tools_ran``), as after any later turn.
Nothing comes before such a turn in its transcript: leaving it out is beginning a new
conversation (``Restored.begin_anew``)."""

from __future__ import annotations

import asyncio

from session_core import SessionCoreError, get_logger

from ._collaborators import RuntimeRegistry
from ._turn_state import LeaseHolder, RunOutcome

log = get_logger("agent_runtime._turn")


async def keep_unfinished_session(
    registry: RuntimeRegistry, holder: LeaseHolder, outcome: RunOutcome
) -> None:
    """Name the session of ``outcome``'s run in the registry when it began one and ended
    unsaved after its tools ran; a storage failure is logged, never raised (the turn's answer
    stands: the next message then begins anew, untold, as before)."""
    session_id = outcome.session_id
    if outcome.recorded or not outcome.began_session or not outcome.tools_ran or session_id is None:
        return
    if outcome.mirror_errors > outcome.caught_up_after:
        # The store may lack the turn's prompt: resumed, the turn would not be left out.
        log.warning("turn.unfinished_session_not_kept", reason="store_behind")
        return
    result = outcome.result
    same = result is not None and result.session_id == session_id
    total = float(result.total_cost_usd or 0.0) if result is not None and same else 0.0
    # After an expired history the conversation is this session's: its figures start again
    # here, once (a retry resumes this session and adds to them, as the next answer does).
    conversation_cost = outcome.failed_cost_counted if outcome.new_conversation else None
    await _keep(registry, holder, session_id, total, conversation_cost)


async def keep_session_before_tools(
    registry: RuntimeRegistry, holder: LeaseHolder, outcome: RunOutcome
) -> None:
    """Name the session of ``outcome``'s run in the registry, once, when it began one and a
    tool call is about to run, its transcript so far stored (``_save_before_tools``): should
    the runtime die while the call runs, its retry resumes that session and is told what ran.
    An answer saved later names it all the same."""
    session_id = outcome.session_id
    if outcome.session_kept or not outcome.began_session or session_id is None:
        return
    if outcome.mirror_errors > outcome.caught_up_after:
        return  # the store may lack the turn's prompt: the run's end decides (above)
    # Nothing of this run is counted yet: after an expired history its figures start at nothing.
    conversation_cost = 0.0 if outcome.new_conversation else None
    outcome.session_kept = await _keep(registry, holder, session_id, 0.0, conversation_cost)


async def _keep(
    registry: RuntimeRegistry,
    holder: LeaseHolder,
    session_id: str,
    total: float,
    conversation_cost: float | None,
) -> bool:
    try:
        await asyncio.to_thread(
            registry.keep_unfinished_session,
            holder.lease,
            session_id,
            session_cost_usd=total,
            conversation_cost_usd=conversation_cost,
        )
    except SessionCoreError as exc:
        log.warning("turn.unfinished_session_not_kept", error_type=type(exc).__name__)
        return False
    log.info("turn.unfinished_session_kept")
    return True
