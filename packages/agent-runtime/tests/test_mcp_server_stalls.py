"""An MCP server that stalls: the user still gets an answer in time, and the operator is told
which server of mcp.json to look at.

- One that takes a tool call and never answers it: the CLI would wait far past any turn's time
  (its own limit for a command server is 30 minutes), and the user would get nothing but the
  time limit's stop. The runtime bounds each MCP call (``MCP_TOOL_TIMEOUT_MS``).
- One that never finishes its handshake: the CLI starts the turn with it still "pending" (not
  "failed"), and the agent's call of its tool finds no such tool."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from agentbot_testing import claude_config_without_approvals
from local_stack import ToolCall, tool_results
from session_core import configure_logging

pytestmark = pytest.mark.slow

# Answers the handshake and lists one tool, as mcp.json's argument says: "stall-on-call" reads a
# call of it and never answers; "stall-on-start" never answers anything.
STALLING_SERVER = """
import json, sys, time
if sys.argv[1] == "stall-on-start":
    time.sleep(3600)
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    method = message.get("method")
    if method == "tools/call":
        time.sleep(3600)
    result = {}
    if method == "initialize":
        result = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "stalls", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [{"name": "lookup", "description": "Look something up.",
                             "inputSchema": {"type": "object", "properties": {}}}]}
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
"""


def responder(request: dict[str, Any]) -> Any:
    results = tool_results(request)
    if results:
        return f"The lookup failed: {results[-1]}"
    return [ToolCall(name="mcp__stalls__lookup", input={})]


def _config_with_stalling_server(directory: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = claude_config_without_approvals(directory)
    (config / "mcp" / "stalls.py").write_text(STALLING_SERVER)
    mcp = json.loads((config / "mcp.json").read_text())
    mcp["mcpServers"]["stalls"] = {
        "type": "stdio",
        "command": "${PYTHON}",
        "args": ["-I", "${CLAUDE_CONFIG_PATH}/mcp/stalls.py", how],
    }
    (config / "mcp.json").write_text(json.dumps(mcp))
    monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
    return config


def test_an_mcp_tool_call_that_is_never_answered_fails_in_time_for_an_answer(
    make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch
) -> None:
    config = _config_with_stalling_server(tmp_path, "stall-on-call", monkeypatch)
    model_server.responder = responder
    runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config), "MCP_TOOL_TIMEOUT_MS": "3000"})

    started = time.monotonic()
    result = runtime.run_turn(turn_request("look it up", turn_id=1), time_budget_s=60)

    assert result.ok and not result.stopped, result
    assert result.text.startswith("The lookup failed:"), result.text
    assert "timed out" in result.text
    assert time.monotonic() - started < 30


def test_an_mcp_server_that_never_finishes_starting_is_named_when_the_agent_needs_it(
    make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    config = _config_with_stalling_server(tmp_path, "stall-on-start", monkeypatch)
    model_server.responder = responder
    runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config)})
    configure_logging(json_lines=True)

    result = runtime.run_turn(turn_request("look it up", turn_id=1), time_budget_s=120)

    assert result.ok and not result.stopped, result
    assert result.text.startswith("The lookup failed:"), result.text
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    unavailable = [
        (line["server"], line["fix"]) for line in logged if line.get("event") == "turn.mcp_server_unavailable"
    ]
    assert ("stalls", f"{config}/mcp.json: mcpServers.stalls") in unavailable


def test_a_call_of_a_tool_a_connected_server_does_not_offer_does_not_name_the_server_as_not_connected(
    make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The CLI answers "No such tool available" to a made-up tool name too: a server that
    connected and runs fine is no lead for the operator."""
    config = _config_with_stalling_server(tmp_path, "stall-on-call", monkeypatch)

    def calls_a_tool_the_server_lacks(request: dict[str, Any]) -> Any:
        results = tool_results(request)
        if results:
            return f"The lookup failed: {results[-1]}"
        return [ToolCall(name="mcp__stalls__lookup_everything", input={})]

    model_server.responder = calls_a_tool_the_server_lacks
    runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config)})
    configure_logging(json_lines=True)

    result = runtime.run_turn(turn_request("look it up", turn_id=1), time_budget_s=120)

    assert result.ok and "No such tool available" in result.text, result
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    unavailable = [line for line in logged if line.get("event") == "turn.mcp_server_unavailable"]
    assert [line for line in unavailable if line["server"] == "stalls"] == []
