"""The progress line's raw material: which tool (or subagent) runs and its main argument,
shortened and with anything secret-looking masked. Never the tool's output; the channel words
and escapes it (the runtime writes nothing a user reads)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from session_core import ToolActivity, mask_secrets, utf16_len, well_formed, within_utf16

MAX_ARGUMENT_CHARS = 80
# Tools whose main argument is a file path: shown as the path's last two parts.
_PATH_TOOLS = {"Read", "Write", "Edit", "MultiEdit", "NotebookEdit"}
_SUBAGENT_TOOLS = {"Task", "Agent"}
_ARGUMENT_FIELDS = {
    "Bash": "command",
    "Glob": "pattern",
    "Grep": "pattern",
    "WebSearch": "query",
    "WebFetch": "url",
    "Skill": "skill",
}


def shorten(text: str, limit: int = MAX_ARGUMENT_CHARS) -> str:
    """One line of at most ``limit`` UTF-16 units (as Telegram counts), cut between the
    characters a chat shows (never inside a flag, a family emoji or a conjunct). A lone
    surrogate (a model's JSON may hold "\\ud83d" alone) shows as U+FFFD: UTF-16 has no
    length for it."""
    line = " ".join(well_formed(text).split())
    return line if utf16_len(line) <= limit else within_utf16(line, limit - 1).rstrip() + "…"


def tool_activity(name: str, tool_input: Mapping[str, Any] | None) -> ToolActivity:
    """What a ``tool_use`` block of ``name`` with ``tool_input`` shows while it runs."""
    given = tool_input or {}
    if name in _SUBAGENT_TOOLS:
        subagent = given.get("subagent_type") or given.get("description") or ""
        return ToolActivity(kind="subagent", name=shorten(mask_secrets(str(subagent)), 40) or "agent")
    if name.startswith("mcp__"):
        # An MCP tool's arguments are the server's business (and may carry anything): name only.
        server, _, tool = name[5:].partition("__")
        return ToolActivity(kind="tool", name=shorten(f"{server}: {tool}", 60))
    raw = ""
    if name in _PATH_TOOLS:
        path = str(given.get("file_path") or given.get("notebook_path") or "")
        raw = "/".join(path.rstrip("/").split("/")[-2:])
    elif name in _ARGUMENT_FIELDS:
        raw = str(given.get(_ARGUMENT_FIELDS[name]) or "")
        if name == "WebFetch":
            raw = raw.split("?", 1)[0].split("#", 1)[0]  # a query string may carry a token
    return ToolActivity(kind="tool", name=shorten(name, 40), argument=shorten(mask_secrets(raw)))
