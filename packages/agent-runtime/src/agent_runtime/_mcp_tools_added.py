"""Which tools became available during a run, as the CLI records it in the transcript
(inspected in real transcripts of the bundled CLI).

An MCP server still connecting when the CLI's startup wait (MCP_STARTUP_TIMEOUT_MS) ends is
"pending" in the run's init message. Once it connects, the CLI's next model call carries an
attachment entry telling the model "The following tools just became available"::

    {"type": "attachment", "attachment": {"type": "deferred_tools_delta",
                                          "addedNames": ["mcp__<server>__<tool>", ...]}}

The entry is the CLI's own: no tool's output writes it."""

from __future__ import annotations

from typing import Any


def tools_added(entry: dict[str, Any]) -> list[str]:
    """The names of the tools a transcript entry records as just become available."""
    attachment = entry.get("attachment") if entry.get("type") == "attachment" else None
    if not isinstance(attachment, dict) or attachment.get("type") != "deferred_tools_delta":
        return []
    names = attachment.get("addedNames")
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []
