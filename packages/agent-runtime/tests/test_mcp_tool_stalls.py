"""An MCP server that takes a tool call and never answers it: the CLI would wait for it far past
any turn's time (its own limit for a command server is 30 minutes), and the user would get
nothing but the time limit's stop. The runtime bounds each MCP call (``MCP_TOOL_TIMEOUT_MS``):
the model is told the call failed and the user gets an answer in time."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from agentbot_testing import claude_config_without_approvals
from local_stack import ToolCall, tool_results

pytestmark = pytest.mark.slow

# Answers the handshake and lists one tool; a call of it is read and never answered.
STALLING_SERVER = """
import json, sys, time
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


def test_an_mcp_tool_call_that_is_never_answered_fails_in_time_for_an_answer(
    make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch
) -> None:
    config = claude_config_without_approvals(tmp_path)
    (config / "mcp" / "stalls.py").write_text(STALLING_SERVER)
    mcp = json.loads((config / "mcp.json").read_text())
    mcp["mcpServers"]["stalls"] = {
        "type": "stdio",
        "command": "${PYTHON}",
        "args": ["-I", "${CLAUDE_CONFIG_PATH}/mcp/stalls.py"],
    }
    (config / "mcp.json").write_text(json.dumps(mcp))
    monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
    model_server.responder = responder
    runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config), "MCP_TOOL_TIMEOUT_MS": "3000"})

    started = time.monotonic()
    result = runtime.run_turn(turn_request("look it up", turn_id=1), time_budget_s=60)

    assert result.ok and not result.stopped, result
    assert result.text.startswith("The lookup failed:"), result.text
    assert "timed out" in result.text
    assert time.monotonic() - started < 30
