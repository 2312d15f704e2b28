"""MCP servers that did not connect at a turn's start, left out of this container's next turns
for a while (``REST_S``), and what the agent is told about them meanwhile.

The CLI waits for every server at the start of each turn (``MCP_STARTUP_TIMEOUT_MS``): without
this, a server that is down would slow every answer by that wait for as long as it stays down.
After ``REST_S`` the next turn tries it again."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

# Decided: 5 minutes. A dead server then costs one slowed answer per 5 minutes per warm
# container; one that comes back is missed for at most that long.
REST_S = 300.0

_Spec = TypeVar("_Spec", bound=Mapping[str, Any])


class McpServersAtRest:
    """The servers ``rest`` was told of in the last ``REST_S`` seconds of ``clock``.

    A remote server is left out of every chat's turns; a command server only of its own chat's
    (``session``): it starts in the session's ``work/``, which that chat's agent writes, so one
    chat's files (or its full disk) must not take it from the others."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._until: dict[tuple[str, str], float] = {}

    def rest(self, names: Iterable[str], servers: Mapping[str, Mapping[str, Any]], session: str) -> None:
        """Leave ``names`` (of ``servers``) out of the turns of the next ``REST_S`` seconds."""
        until = self._clock() + REST_S
        for name in names:
            self._until[_key(name, servers.get(name, {}), session)] = until

    def lift(self, name: str, servers: Mapping[str, Mapping[str, Any]], session: str) -> bool:
        """Start ``name`` in the next turns again (it connected after all); whether it was
        left out."""
        return self._until.pop(_key(name, servers.get(name, {}), session), None) is not None

    def split(self, servers: Mapping[str, _Spec], session: str) -> tuple[dict[str, _Spec], list[str]]:
        """``servers`` to start in a turn of ``session`` starting now, and the names of those
        left out."""
        now = self._clock()
        resting = {
            name for name, spec in servers.items() if now < self._until.get(_key(name, spec, session), 0.0)
        }
        started = {name: spec for name, spec in servers.items() if name not in resting}
        return started, sorted(resting)


def _key(name: str, spec: Mapping[str, Any], session: str) -> tuple[str, str]:
    # A command server (it has a "command") rests per session; a remote one for every chat.
    return (session if "command" in spec else "", name)


def unavailable_servers_note(names: Iterable[str]) -> str:
    """What the agent is told of the servers left out of its turn (after the system prompt,
    which then changes only as a server is left out or back)."""
    listed = ", ".join(repr(name) for name in names)
    return (
        f"MCP servers unavailable right now (they did not start; their tools are missing from "
        f"this turn): {listed}. If the user asks for something only they can do, say that it "
        "is unavailable for now and to try again in a few minutes."
    )
