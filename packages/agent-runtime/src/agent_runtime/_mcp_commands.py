"""Whether each command (stdio) MCP server's program is there to run.

The CLI starts these servers inside a turn, and one whose program is missing only drops its
tools: the agent answers without them and nobody is told. The runtime's start-up check finds
it first, where the runtime really runs (its image, or the machine of `agentbot dev`), and
names the field to fix, as part of loading claude-config (``load_claude_config(programs=...)``).
`agentbot doctor` checks it for `agentbot dev` (this machine); for a deployed stack it runs
outside the image and cannot.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._environment import tool_search_path
from ._errors import ClaudeConfigError


def found_here(command: str, search: str) -> str | None:
    """Where this process would find ``command`` (None: nowhere it may run it). ``shutil.which``
    checks a path as it is and looks a name up on ``search``."""
    return shutil.which(command, path=search)


@dataclass(frozen=True)
class ProgramLookup:
    """How programs are looked up, and for whom: `agentbot dev` started as root runs the agent
    as another user, and asks as that user (root may run what it cannot)."""

    find: Callable[[str, str], str | None] = found_here
    user: str = ""  # the user ``find`` asks as, when not this process's


AS_THIS_PROCESS = ProgramLookup()


def check_mcp_command(
    file: str, name: str, spec: Mapping[str, Any], environ: Mapping[str, str], lookup: ProgramLookup
) -> None:
    """Raise ``ClaudeConfigError`` when command server ``name`` (its ``spec`` in mcp.json, at
    ``file``) has a program that cannot be run; an HTTP server passes.

    The program is looked up as the CLI will start it: a name on the server's own ``PATH``
    (its ``env``) or else the runtime's; an absolute path as it is."""
    if spec.get("type") != "stdio":
        return
    as_runner = f" for {lookup.user!r}, the user the agent runs as" if lookup.user else ""
    command = spec["command"]
    field = f"mcpServers.{name}.command"
    if os.sep in command and not os.path.isabs(command):
        raise ClaudeConfigError(
            file,
            field,
            f"{command!r} is a relative path (a turn runs in the chat's own directory): "
            "give an absolute path, e.g. ${CLAUDE_CONFIG_PATH}/mcp/...",
        )
    search = (spec.get("env") or {}).get("PATH") or tool_search_path(environ)
    if lookup.find(command, search) is not None:
        return
    if os.sep in command:
        reason = f"{command} is not an executable file here{as_runner}"
        if lookup.user and os.path.isfile(command):
            reason += (
                " (let every user run it and pass the directories above it, or put it in /usr/local/bin)"
            )
        raise ClaudeConfigError(file, field, reason)
    raise ClaudeConfigError(
        file,
        field,
        f"program {command!r} is not on the runtime's PATH ({_shown(search)}){as_runner}: install it "
        "where the runtime runs (for the deployed image: packages/agent-runtime/Dockerfile) or give "
        "its absolute path",
    )


def _shown(search: str, limit: int = 6) -> str:
    """A PATH as an error shows it: each directory once, the first few (a developer's shell
    PATH can run to hundreds of characters, much of it repeated)."""
    dirs = list(dict.fromkeys(d for d in search.split(os.pathsep) if d))
    more = f" and {len(dirs) - limit} more" if len(dirs) > limit else ""
    return os.pathsep.join(dirs[:limit]) + more
