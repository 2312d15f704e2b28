"""MCP servers that did not connect at a turn's start, left out of this container's next turns
for a while (``REST_S``), and what the agent is told about them meanwhile.

The CLI waits for every server at the start of each turn (``MCP_STARTUP_TIMEOUT_MS``): without
this, a server that is down would slow every answer by that wait for as long as it stays down.
After ``REST_S`` the next turn tries it again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

# Decided: 5 minutes. A dead server then costs one slowed answer per 5 minutes per warm
# container; one that comes back is missed for at most that long.
REST_S = 300.0

# Why a server rests: it did not connect (down, slow, crashed), or it asked for a sign-in
# (OAuth) that no one can do in a turn: it waits for the operator's credential. Decided: the
# second is tried again after REST_S too, as the way a new credential is picked up without a
# deploy (the proxy of a secret header reads its SSM parameter again when it is refused).
Absence = Literal["did not start", "needs authorisation"]

_Spec = TypeVar("_Spec", bound=Mapping[str, Any])


class McpServersAtRest:
    """The servers ``rest`` was told of in the last ``REST_S`` seconds of ``clock``.

    A remote server is left out of every chat's turns; a command server only of its own chat's
    (``session``): it starts in the session's ``work/``, which that chat's agent writes, so one
    chat's files (or its full disk) must not take it from the others."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._until: dict[tuple[str, str], tuple[float, Absence]] = {}

    def rest(
        self, absences: Mapping[str, Absence], servers: Mapping[str, Mapping[str, Any]], session: str
    ) -> None:
        """Leave the servers of ``absences`` (of ``servers``), each for its reason, out of the
        turns of the next ``REST_S`` seconds."""
        until = self._clock() + REST_S
        for name, why in absences.items():
            self._until[_key(name, servers.get(name, {}), session)] = (until, why)

    def lift(self, name: str, servers: Mapping[str, Mapping[str, Any]], session: str) -> bool:
        """Start ``name`` in the next turns again (it connected after all); whether it was
        left out."""
        return self._until.pop(_key(name, servers.get(name, {}), session), None) is not None

    def split(
        self, servers: Mapping[str, _Spec], session: str
    ) -> tuple[dict[str, _Spec], dict[str, Absence]]:
        """``servers`` to start in a turn of ``session`` starting now, and those left out
        (by name, in order) with why."""
        now = self._clock()
        resting: dict[str, Absence] = {}
        for name in sorted(servers):
            until, why = self._until.get(_key(name, servers[name], session), (0.0, "did not start"))
            if now < until:
                resting[name] = why
        started = {name: spec for name, spec in servers.items() if name not in resting}
        return started, resting


def _key(name: str, spec: Mapping[str, Any], session: str) -> tuple[str, str]:
    # A command server (it has a "command") rests per session; a remote one for every chat.
    return (session if "command" in spec else "", name)


def unavailable_servers_note(left_out: Mapping[str, Absence]) -> str:
    """What the agent is told of the servers left out of its turn (after the system prompt,
    which then changes only as a server is left out or back)."""
    notes = []
    down = [repr(name) for name, why in left_out.items() if why == "did not start"]
    if down:
        notes.append(
            f"MCP servers unavailable right now (they did not start; their tools are missing "
            f"from this turn): {', '.join(down)}. If the user asks for something only they can "
            "do, say that it is unavailable for now and to try again in a few minutes."
        )
    unauthorised = [repr(name) for name, why in left_out.items() if why == "needs authorisation"]
    if unauthorised:
        notes.append(
            f"MCP servers that need authorisation (they asked this bot to sign in, which it "
            f"cannot do itself; their tools are missing from this turn): {', '.join(unauthorised)}. "
            "If the user asks for something only they can do, say that the bot's operator has "
            "to give it access to that service first; trying again will not help until then."
        )
    return "\n\n".join(notes)
