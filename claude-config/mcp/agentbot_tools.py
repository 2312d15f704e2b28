"""``agentbot-tools``: the example command (stdio) MCP server shipped with claude-config.

mcp.json runs it as ``${PYTHON} -I ${CLAUDE_CONFIG_PATH:-...}/mcp/agentbot_tools.py``. It speaks
MCP's JSON-RPC over newline-delimited stdin/stdout with nothing beyond the standard library,
so it works offline and starts in tens of milliseconds (the CLI waits for its command MCP
servers before the first model call, so start-up time is turn latency). Tools:

- ``utc_now``: the current UTC time (ISO 8601);
- ``word_count``: words, lines and characters of a text.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

SERVER_NAME = "agentbot-tools"
_PROTOCOL = "2025-06-18"

TOOLS: list[dict[str, Any]] = [
    {
        "name": "utc_now",
        "description": "Current date and time in UTC (ISO 8601).",
        "inputSchema": {"type": "object", "properties": {}, "additionalProperties": False},
    },
    {
        "name": "word_count",
        "description": "Count the words, lines and characters of a text.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "the text to count"}},
            "required": ["text"],
            "additionalProperties": False,
        },
    },
]


def call_tool(name: str, arguments: dict[str, Any]) -> str:
    """Run one tool and return its text result; ValueError for an unknown tool or bad input."""
    if name == "utc_now":
        return datetime.now(UTC).isoformat(timespec="seconds")
    if name == "word_count":
        text = arguments.get("text")
        if not isinstance(text, str):
            raise ValueError("word_count needs a string 'text'")
        return f"words={len(text.split())} lines={len(text.splitlines())} characters={len(text)}"
    raise ValueError(f"unknown tool {name!r}")


def handle_message(message: dict[str, Any]) -> dict[str, Any] | None:
    """Answer one JSON-RPC message (None for notifications)."""
    method = message.get("method")
    msg_id = message.get("id")
    if msg_id is None:
        return None  # notifications (initialized, cancelled) need no answer
    result: dict[str, Any]
    if method == "initialize":
        requested = (message.get("params") or {}).get("protocolVersion") or _PROTOCOL
        result = {
            "protocolVersion": requested,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": SERVER_NAME, "version": "0.1.0"},
        }
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        params = message.get("params") or {}
        try:
            text = call_tool(str(params.get("name")), params.get("arguments") or {})
            result = {"content": [{"type": "text", "text": text}], "isError": False}
        except ValueError as exc:
            result = {"content": [{"type": "text", "text": str(exc)}], "isError": True}
    elif method in ("resources/list", "prompts/list"):
        result = {method.split("/")[0]: []}
    else:
        return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32601, "message": f"no method {method}"}}
    return {"jsonrpc": "2.0", "id": msg_id, "result": result}


def serve(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
    """Serve until stdin closes."""
    for line in stdin:
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            reply: dict[str, Any] | None = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32700, "message": "parse error"},
            }
        else:
            reply = handle_message(message) if isinstance(message, dict) else None
        if reply is not None:
            stdout.write(json.dumps(reply) + "\n")
            stdout.flush()


if __name__ == "__main__":
    serve()
