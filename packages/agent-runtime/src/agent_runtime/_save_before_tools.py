"""The PreToolUse hook that stores the transcript up to a tool call before the call runs.

A tool call may have effects (a mail sent, a paid API called). When the whole runtime dies
while one runs, the retry of the message knows which calls ran only from what the store
holds: the calls before it with their results ("already ran") and this one ("may or may not
have run", see ``_tools_ran``). The hook waits for the CLI to mirror the entry of the call
(it writes it just after asking the hook) and sends everything held (``HeldMirror``); for a
run that began a new session it also names that session in the registry, once, so that the
retry resumes it. Nothing is written once the lease is lost: another runtime may own the
chat by then.

When the store does not take it (an outage, throttling: every try failed), the call does not
run and the run stops: run blind, a runtime killed while it ran would leave a retry that runs
it again unknowing. The turn ends as a storage failure the queue retries; the refused call
is left out of what that retry is told (as any call a hook refused, see ``_tools_ran``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from session_core import get_logger

from ._held_mirror import HeldMirror
from ._turn_state import LeaseHolder

log = get_logger("agent_runtime._turn")

# How long a call waits for the CLI to mirror its entry (tens of milliseconds, measured).
_CALL_MIRRORED_S = 2.0
# The refused call's result, as the agent (and the stored transcript) reads it.
REFUSED_UNSAVED = (
    "Not run: the bot could not save the conversation before this call (a storage outage). "
    "This turn ends here; the message will be tried again."
)


@dataclass
class SaveBeforeTools:
    """The hook of one run; ``held`` is the store its SDK writes to."""

    held: HeldMirror
    holder: LeaseHolder
    # Names a session the run began in the registry (once; a no-op otherwise).
    name_session: Callable[[], Awaitable[None]]
    # Told of each call refused because its save failed (by id, when the CLI gave one).
    refused: Callable[[str | None], None]

    async def __call__(self, hook_input: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        if self.holder.lost:
            return {}
        tool = str(hook_input.get("tool_name"))[:80]
        if tool_use_id is not None and not await self.held.wait_for_call(tool_use_id, _CALL_MIRRORED_S):
            log.warning("turn.tool_call_not_mirrored", tool=tool)
        if self.holder.lost:  # while it waited
            return {}
        if not await self.held.send():
            log.error("turn.tool_call_refused_unsaved", tool=tool)
            self.refused(tool_use_id)
            return _refused_and_stopped()
        await self.name_session()
        return {}  # no decision: the call runs (or not) as the other hooks and the policy say


def _refused_and_stopped() -> dict[str, Any]:
    return {
        "continue_": False,  # no further model call: the turn ends as a storage failure
        "stopReason": "The conversation could not be saved before a tool call.",
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": REFUSED_UNSAVED,
        },
    }
