"""The whole runtime process dies while a tool call of its turn runs (Lambda out of memory, a
hard kill of its sandbox): nothing of the turn is flushed at its end. The queue's retry must
know which calls ran (the transcript up to each call is stored before the call runs) instead
of running them all again. The real handler under awslambdaric (local Lambda), the real CLI,
a scripted model server, moto."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from agent_runtime import workspace_paths
from local_stack import (
    FunctionSpec,
    LocalLambda,
    ModelServer,
    ToolCall,
    last_user_text,
    local_client,
    tool_results,
)
from session_core import TURN_VERSION, SessionKey, TurnRequest, TurnResult, decode_turn_result, encode

pytestmark = pytest.mark.slow

KEY = "default/1001/0"
FIRST = "echo one >> ledger.txt"
SECOND = "echo two >> ledger.txt && sleep 60"  # killed while it sleeps
TOLD = "They already ran and must not be repeated"


def two_calls(request: dict[str, Any]) -> Any:
    """Asked to "append twice", the agent makes two Bash calls one after the other, then
    answers; told that calls of the message already ran, it answers at once."""
    sent = json.dumps(request["messages"])
    if TOLD in sent:
        return "NOTED"
    if tool_results(request):
        if json.dumps(SECOND)[1:-1] in sent:
            return "DONE"
        return [ToolCall(name="Bash", input={"command": SECOND, "description": "second"})]
    if last_user_text(request).endswith("append twice"):
        return [ToolCall(name="Bash", input={"command": FIRST, "description": "first"})]
    return f"last={last_user_text(request)}"


@pytest.fixture
def model_server() -> Any:
    with ModelServer(two_calls) as server:
        yield server


def _ledger(sessions_root: Path) -> list[str]:
    path = Path(workspace_paths(sessions_root, SessionKey.parse(KEY)).cwd) / "ledger.txt"
    return path.read_text().splitlines() if path.exists() else []


def _invoke(lam: LocalLambda, turn_id: int, prompt: str) -> dict[str, Any]:
    request = TurnRequest(version=TURN_VERSION, session_key=KEY, turn_id=turn_id, prompt=prompt)
    out = local_client("lambda", lam.endpoint).invoke(FunctionName="agent-runtime", Payload=encode(request))
    return {"error": out.get("FunctionError"), "payload": out["Payload"].read()}


def _turn(lam: LocalLambda, turn_id: int, prompt: str) -> TurnResult:
    """The turn's answer, asked again while the killed runtime's lease still holds the chat
    (as the queue retries a busy turn)."""
    deadline = time.monotonic() + 30
    while True:
        out = _invoke(lam, turn_id, prompt)
        assert out["error"] is None, out
        result = decode_turn_result(out["payload"])
        if result.error_kind != "busy" or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def _kill_runtime_once_the_second_call_runs(lam: LocalLambda, sessions_root: Path) -> threading.Thread:
    def kill() -> None:
        deadline = time.monotonic() + 60
        while _ledger(sessions_root) != ["one", "two"] and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in lam.process_ids:
            os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill)
    killer.start()
    return killer


@pytest.mark.parametrize("earlier_turn", [False, True], ids=["first_turn", "later_turn"])
def test_a_runtime_killed_while_a_tool_runs_leaves_the_retry_told_what_ran(
    runtime_env, model_server, sessions_root, earlier_turn
) -> None:
    env = {**runtime_env, "LEASE_DURATION_S": "3"}  # the dead runtime's lease ends soon
    spec = {"agent-runtime": FunctionSpec(handler="agent_runtime.handler.handle", env=env, timeout_s=120)}
    with LocalLambda(spec) as lam:
        if earlier_turn:
            assert _turn(lam, 1, "hello").ok
        killer = _kill_runtime_once_the_second_call_runs(lam, sessions_root)
        killed = _invoke(lam, 2, "please append twice")
        killer.join()
        assert killed["error"] == "Unhandled", killed  # the runtime died mid-turn
        assert _ledger(sessions_root) == ["one", "two"]
        calls_before = len(model_server.model_calls)

        retried = _turn(lam, 2, "please append twice")

    assert _ledger(sessions_root) == ["one", "two"]  # neither call ran again
    assert retried.ok and retried.text == "NOTED", retried
    assert len(model_server.model_calls) == calls_before + 1  # straight to the answer
    # The user's turn: the CLI may append a system message of its own after it (the MCP
    # servers that failed to connect).
    asked = [m for m in model_server.model_calls[-1].body["messages"] if m.get("role") == "user"]
    note = json.dumps(asked[-1])
    assert TOLD in note  # the first call, with its result
    # The second was cut while it ran: named as one that may or may not have run.
    assert "may or may not have run" in note and "sleep 60" in note
    assert note.count("echo one") == 0  # resumed after the first call: not named as unsure
    assert json.dumps(model_server.model_calls[-1].body["messages"]).count(FIRST) == 1


def test_each_tool_call_costs_one_store_write_and_a_turn_without_tools_none_more(
    make_runtime, turn_request
) -> None:
    """Storing the transcript before each call is one append per call that has something new
    to store; a turn without tools writes at its result and at its end, as before."""
    runtime = make_runtime()

    def writes(turn_id: int, prompt: str) -> int:
        before = runtime.store.requests[("dynamodb", "TransactWriteItems")]
        assert runtime.run_turn(turn_request(prompt, turn_id=turn_id)).ok
        return runtime.store.requests[("dynamodb", "TransactWriteItems")] - before

    plain = writes(1, "hello")
    with_tools = writes(2, "please append twice")

    assert plain == 2  # the result's entries, then the run's last ones
    assert with_tools == plain + 2  # and one before each of its two calls
    assert writes(3, "thanks") == plain
