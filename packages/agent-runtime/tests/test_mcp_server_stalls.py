"""An MCP server that stalls: the user still gets an answer in time, and the operator is told
which server of mcp.json to look at.

- One that takes a tool call and never answers it: the CLI would wait far past any turn's time
  (its own limit for a command server is 30 minutes), and the user would get nothing but the
  time limit's stop. The runtime bounds each MCP call (``MCP_TOOL_TIMEOUT_MS``).
- One that never finishes its handshake: the CLI waits for it at the start of the turn (the
  runtime's ``MCP_STARTUP_TIMEOUT_MS``, not the CLI's 30 s), then goes on with it still
  "pending" (not "failed"). A warm container leaves it out of the next turns for a while, so
  that the users' answers are not each slowed by that wait, and tells the agent it is missing.
- One that dies in the middle of a call: the agent is told the connection closed; the operator
  is told which server."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from agentbot_testing import LOOKUP_ANSWER, HttpMcpServer, claude_config_without_approvals
from local_stack import ToolCall, last_user_text, tool_results
from session_core import configure_logging

pytestmark = pytest.mark.slow

# Answers the handshake and lists one tool, as mcp.json's argument says: "stall-on-call" reads a
# call of it and never answers; "stall-on-start" never answers anything; "crash-on-call" exits
# when called; "stall-on-start-if-marked" never answers in a cwd the agent marked, else answers.
STALLING_SERVER = """
import json, os, sys, time
marked = sys.argv[1] == "stall-on-start-if-marked" and os.path.exists("marked")
if sys.argv[1] == "stall-on-start" or marked:
    time.sleep(3600)
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    method = message.get("method")
    if method == "tools/call" and sys.argv[1] == "crash-on-call":
        os._exit(1)
    if method == "tools/call" and sys.argv[1] != "stall-on-start-if-marked":
        time.sleep(3600)
    result = {"content": [{"type": "text", "text": "found"}]}
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


def test_a_servers_own_timeout_in_mcp_json_bounds_its_calls(
    make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch
) -> None:
    """One server's calls may get less time than MCP_TOOL_TIMEOUT_MS gives every server: its
    ``timeout`` (milliseconds) in mcp.json, which the CLI takes as that server's limit."""
    config = _config_with_stalling_server(tmp_path, "stall-on-call", monkeypatch)
    mcp = json.loads((config / "mcp.json").read_text())
    mcp["mcpServers"]["stalls"]["timeout"] = 2000
    (config / "mcp.json").write_text(json.dumps(mcp))
    model_server.responder = responder
    runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config), "MCP_TOOL_TIMEOUT_MS": "600000"})

    started = time.monotonic()
    result = runtime.run_turn(turn_request("look it up", turn_id=1), time_budget_s=120)

    assert result.ok and not result.stopped, result
    assert result.text.startswith("The lookup failed:") and "timed out" in result.text, result.text
    assert time.monotonic() - started < 60  # not the 10 minutes every other server gets


def _logged_unavailable(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    return [line for line in logged if line.get("event") == "turn.mcp_server_unavailable"]


def test_an_mcp_server_that_never_finishes_starting_costs_the_turn_only_the_startup_wait(
    make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    config = _config_with_stalling_server(tmp_path, "stall-on-start", monkeypatch)
    model_server.responder = responder
    runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config), "MCP_STARTUP_TIMEOUT_MS": "2000"})
    configure_logging(json_lines=True)

    started = time.monotonic()
    result = runtime.run_turn(turn_request("look it up", turn_id=1), time_budget_s=120)

    assert result.ok and not result.stopped, result
    assert result.text.startswith("The lookup failed:"), result.text
    assert time.monotonic() - started < 20  # the CLI's own wait is 30 s
    unavailable = [(line["server"], line["fix"]) for line in _logged_unavailable(capsys)]
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


def test_a_warm_container_leaves_out_a_server_that_did_not_connect_then_tries_it_again(
    make_dated_runtime, lease_clock, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    config = claude_config_without_approvals(tmp_path)
    model_server.responder = responder
    with HttpMcpServer() as vault:
        mcp = json.loads((config / "mcp.json").read_text())
        mcp["mcpServers"]["stalls"] = {"type": "http", "url": vault.url}
        (config / "mcp.json").write_text(json.dumps(mcp))
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
        runtime = make_dated_runtime(
            env={"CLAUDE_CONFIG_PATH": str(config), "MCP_STARTUP_TIMEOUT_MS": "1000"}
        )
        configure_logging(json_lines=True)
        vault.stalled = True

        first = runtime.run_turn(turn_request("look it up", turn_id=1), time_budget_s=60)
        tried = len(vault.requests)
        second = runtime.run_turn(turn_request("look it up again", turn_id=2), time_budget_s=60)

        assert first.ok and second.ok, (first, second)
        assert tried > 0 and len(vault.requests) == tried  # the second turn did not wait for it
        told = [json.dumps(call.body["system"]) for call in model_server.model_calls]
        assert "stalls" not in told[0] and "stalls" in told[-1]  # the agent knows what it lacks
        assert [line["server"] for line in _logged_unavailable(capsys)].count("stalls") == 1

        vault.stalled = False
        lease_clock.now += 600
        third = runtime.run_turn(turn_request("and now?", turn_id=3), time_budget_s=60)

    assert third.ok and LOOKUP_ANSWER in third.text, third


def test_an_mcp_server_that_dies_during_a_call_is_named_for_the_operator(
    make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    config = _config_with_stalling_server(tmp_path, "crash-on-call", monkeypatch)
    model_server.responder = responder
    runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config)})
    configure_logging(json_lines=True)

    result = runtime.run_turn(turn_request("look it up", turn_id=1), time_budget_s=60)

    assert result.ok and result.text.startswith("The lookup failed:"), result
    unavailable = [
        (line["server"], line["tool"], line["fix"]) for line in _logged_unavailable(capsys) if "tool" in line
    ]
    expected = ("stalls", "mcp__stalls__lookup", f"{config}/mcp.json: mcpServers.stalls")
    assert unavailable == [expected], result.text


def test_a_command_server_one_chat_broke_is_not_left_out_of_another_chats_turns(
    make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A command server starts in the chat's work/, which its agent writes: a server that one
    chat's files stop from starting is that chat's problem, not every chat's for 5 minutes."""
    config = _config_with_stalling_server(tmp_path, "stall-on-start-if-marked", monkeypatch)

    def marks_then_looks_up(request: dict[str, Any]) -> Any:
        results = tool_results(request)
        if results:
            return f"Got: {results[-1]}"
        if last_user_text(request) == "mark it":
            return [ToolCall(name="Bash", input={"command": "touch marked", "description": "mark"})]
        return [ToolCall(name="mcp__stalls__lookup", input={})]

    model_server.responder = marks_then_looks_up
    runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config), "MCP_STARTUP_TIMEOUT_MS": "1000"})
    configure_logging(json_lines=True)
    chat_a, chat_b = "default/1001/0", "default/2002/0"

    runtime.run_turn(turn_request("mark it", turn_id=1, session_key=chat_a), time_budget_s=60)
    broken = runtime.run_turn(turn_request("look it up", turn_id=2, session_key=chat_a), time_budget_s=60)
    other = runtime.run_turn(turn_request("look it up", turn_id=1, session_key=chat_b), time_budget_s=60)

    assert broken.ok and "found" not in broken.text, broken
    assert [line["session_key"] for line in _logged_unavailable(capsys) if line["server"] == "stalls"] == [
        chat_a
    ]
    assert other.ok and "found" in other.text, other


def test_a_slow_server_that_connects_during_the_turn_is_not_left_out_of_the_next(
    make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A healthy remote server that needs longer to connect than the startup wait (a cold
    start) misses it, then connects and answers in the same turn: the next turns keep it.
    Scaled down (1 s wait, 3 s start) with seconds of margin each way: the model asks for the
    tool only well after the server is up."""
    config = claude_config_without_approvals(tmp_path)
    up_at = time.monotonic() + 3

    def once_the_server_is_up(request: dict[str, Any]) -> Any:
        time.sleep(max(0.0, up_at + 2 - time.monotonic()))
        return responder(request)

    model_server.responder = once_the_server_is_up
    with HttpMcpServer() as vault:
        mcp = json.loads((config / "mcp.json").read_text())
        mcp["mcpServers"]["stalls"] = {"type": "http", "url": vault.url}
        (config / "mcp.json").write_text(json.dumps(mcp))
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
        runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config), "MCP_STARTUP_TIMEOUT_MS": "1000"})
        configure_logging(json_lines=True)
        vault.stalled = True
        threading.Timer(up_at - time.monotonic(), lambda: setattr(vault, "stalled", False)).start()

        first = runtime.run_turn(turn_request("look it up", turn_id=1), time_budget_s=60)
        second = runtime.run_turn(turn_request("look it up again", turn_id=2), time_budget_s=60)

    assert LOOKUP_ANSWER in first.text, first
    assert LOOKUP_ANSWER in second.text, second
    assert "stalls" not in json.dumps(model_server.model_calls[-1].body["system"])


def test_a_slow_server_that_connects_during_a_turn_that_does_not_call_it_is_offered_in_the_next(
    make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch
) -> None:
    """The server misses the startup wait, then connects while the agent works with another
    tool (the CLI tells the model its tools just became available): it works, so the next turn
    offers it, though nothing called it in the turn it was late for."""
    config = claude_config_without_approvals(tmp_path)
    up_at = time.monotonic() + 3

    def runs_bash_once_the_server_is_up(request: dict[str, Any]) -> Any:
        if tool_results(request):
            return "Done."
        time.sleep(max(0.0, up_at + 2 - time.monotonic()))
        return [ToolCall(name="Bash", input={"command": "echo hi", "description": "greet"})]

    model_server.responder = runs_bash_once_the_server_is_up
    with HttpMcpServer() as vault:
        mcp = json.loads((config / "mcp.json").read_text())
        mcp["mcpServers"]["stalls"] = {"type": "http", "url": vault.url}
        (config / "mcp.json").write_text(json.dumps(mcp))
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
        runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config), "MCP_STARTUP_TIMEOUT_MS": "1000"})
        vault.stalled = True
        threading.Timer(up_at - time.monotonic(), lambda: setattr(vault, "stalled", False)).start()

        first = runtime.run_turn(turn_request("say hi", turn_id=1), time_budget_s=60)
        model_server.responder = responder
        second = runtime.run_turn(turn_request("look it up", turn_id=2), time_budget_s=60)

    assert first.ok and first.text == "Done.", first
    assert second.ok and LOOKUP_ANSWER in second.text, second
    assert "stalls" not in json.dumps(model_server.model_calls[-1].body["system"])


def test_an_http_server_that_dies_during_a_call_is_named_for_the_operator(
    make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The CLI tells the agent only its fetch's error (ECONNRESET): the operator reads which
    server (one with a secret header: test_mcp_secrets)."""
    config = claude_config_without_approvals(tmp_path)
    model_server.responder = responder
    with HttpMcpServer() as vault:
        mcp = json.loads((config / "mcp.json").read_text())
        mcp["mcpServers"]["stalls"] = {"type": "http", "url": vault.url}
        (config / "mcp.json").write_text(json.dumps(mcp))
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
        runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config)})
        configure_logging(json_lines=True)
        vault.dies_on_call = True

        result = runtime.run_turn(turn_request("look it up", turn_id=1), time_budget_s=60)

    assert result.ok and result.text.startswith("The lookup failed:"), result
    unavailable = [
        (line["server"], line["tool"], line["fix"]) for line in _logged_unavailable(capsys) if "tool" in line
    ]
    expected = ("stalls", "mcp__stalls__lookup", f"{config}/mcp.json: mcpServers.stalls")
    assert unavailable == [expected], result.text


def test_a_server_that_refuses_the_runtimes_credentials_is_told_as_needing_authorisation(
    make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A server that asks for an OAuth sign-in is up: it waits for the operator to give the
    runtime a credential (the CLI cannot sign in without a person). The operator reads which
    server and where the credential goes; the agent, that it needs the operator, not that it
    did not start."""
    config = claude_config_without_approvals(tmp_path)
    model_server.responder = responder
    with HttpMcpServer() as vault:
        vault.required_headers = {"Authorization": "Bearer valid"}
        vault.offers_oauth = True
        mcp = json.loads((config / "mcp.json").read_text())
        mcp["mcpServers"]["stalls"] = {"type": "http", "url": vault.url}
        (config / "mcp.json").write_text(json.dumps(mcp))
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
        runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config)})
        configure_logging(json_lines=True)

        first = runtime.run_turn(turn_request("look it up", turn_id=1), time_budget_s=60)
        second = runtime.run_turn(turn_request("look it up again", turn_id=2), time_budget_s=60)

    assert first.ok and second.ok, (first, second)
    logged = [line for line in _logged_unavailable(capsys) if line["server"] == "stalls"]
    assert [line["status"] for line in logged] == ["needs authorisation"], logged
    assert "headers_from_ssm" in logged[0]["fix"] and f"{config}/mcp.json" in logged[0]["fix"]
    system = " ".join(block["text"] for block in model_server.model_calls[-1].body["system"])
    told = [paragraph for paragraph in system.split("\n\n") if "'stalls'" in paragraph]
    assert len(told) == 1 and "operator" in told[0] and "did not start" not in told[0], system
