"""A tool call whose transcript the store could not take before it ran (an outage, throttling:
every try of the save before it failed). Run blind, a runtime killed while it ran left a retry
that ran it again unknowing (a mail sent twice). The call is refused instead and the turn ends
as a storage failure; the queue's retry, with the store back, runs it once. Real CLI, scripted
model server, moto behind a fault-injecting HTTP proxy."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_runtime import workspace_paths
from agentbot_testing import REPO_CLAUDE_CONFIG
from local_stack import ModelServer, ToolCall, last_tool_call, last_user_text, tool_results
from session_core import Approvals, SessionKey

pytestmark = pytest.mark.slow

KEY = "default/1001/0"
PROMPT = "please append one and two"
ONE = "echo one >> ledger.txt && echo first-step-done"
TWO = "echo two >> ledger.txt && echo second-step-done"
# The save before a call: three tries (see _held_mirror).
SAVE_TRIES = 3


def _results(request: dict[str, Any]) -> str:
    """Every tool result the request carries, as JSON."""
    blocks = [
        block
        for message in request["messages"]
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]
    return json.dumps(blocks)


def two_steps(request: dict[str, Any]) -> Any:
    """Asked to append one and two, the agent makes two Bash calls one after the other (each
    once its result is in), then answers."""
    results = _results(request)
    if "Make exactly that call again" in last_user_text(request) and "step-done" not in results:
        return [last_tool_call(request)]  # as the runtime's prompt after an Allow asks
    if any("needs the user's approval" in result for result in tool_results(request)):
        return "Asked for your approval."
    if "second-step-done" in results:
        return "DONE"
    if "first-step-done" in results:
        return [ToolCall(name="Bash", input={"command": TWO, "description": "two"})]
    if last_user_text(request).endswith(PROMPT):
        return [ToolCall(name="Bash", input={"command": ONE, "description": "one"})]
    return f"last={last_user_text(request)}"


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    with ModelServer(two_steps) as server:
        yield server


def _ledger(sessions_root: Path) -> list[str]:
    path = Path(workspace_paths(sessions_root, SessionKey.parse(KEY)).cwd) / "ledger.txt"
    return path.read_text().splitlines() if path.exists() else []


class SaveOutage:
    """Fails transcript appends (DynamoDB transactions that write a chunk) as an outage would:
    once ``began()`` says so, ``tries`` appends fail (each with the retries of its client)."""

    def __init__(self, began: Callable[[], bool], tries: float) -> None:
        self.began, self.tries = began, tries
        self.failed: set[str] = set()  # the appends' request tokens

    def __call__(self, target: str, body: bytes) -> bool:
        if target != "TransactWriteItems" or b'"c#0' not in body or not self.began():
            return False
        token = json.loads(body)["ClientRequestToken"]
        if token in self.failed or len(self.failed) < self.tries:
            self.failed.add(token)
            return True
        return False


@pytest.mark.parametrize(
    ("refused", "outage_lasts"),
    [("first", "the_save"), ("first", "the_attempt"), ("second", "the_save")],
    ids=["first_call_store_back_at_once", "first_call_store_down_all_attempt", "second_call"],
)
def test_a_call_whose_save_failed_is_not_run_and_the_retry_runs_it_once(
    make_runtime, model_server, turn_request, dynamo_faults, sessions_root, refused, outage_lasts
) -> None:
    assert make_runtime().run_turn(turn_request("hello", turn_id=1)).ok
    expected_before = [] if refused == "first" else ["one"]
    outage = SaveOutage(
        began=lambda: _ledger(sessions_root) == expected_before,
        tries=SAVE_TRIES if outage_lasts == "the_save" else float("inf"),
    )
    dynamo_faults.fail = outage

    failed = make_runtime(dynamodb=dynamo_faults.client).run_turn(turn_request(PROMPT, turn_id=2))

    assert len(outage.failed) >= SAVE_TRIES  # the save before the call really failed
    assert _ledger(sessions_root) == expected_before  # the call did not run
    # A storage failure, tried again by the queue (as with any store outage).
    assert failed.error_kind == "internal" and failed.retryable, failed
    assert failed.tools_ran == (refused == "second")  # a refused call is no step taken

    dynamo_faults.fail = lambda target, body: False  # the store is back
    retried = make_runtime().run_turn(turn_request(PROMPT, turn_id=2))

    assert retried.ok and retried.text == "DONE", retried
    assert _ledger(sessions_root) == ["one", "two"]  # each call ran once
    sent = json.dumps(model_server.model_calls[-1].body["messages"])
    # The refused call is neither named (as one that ran or may have) nor shown refused: the
    # retry's own call of it is its only trace.
    assert "may or may not have run" not in sent and "could not save" not in sent
    assert sent.count(TWO) == 1
    if refused == "first":  # sent again as if the failed attempt had never been
        assert sent.count(PROMPT) == 1 and "already ran" not in sent
    else:  # resumed after the first call (and the message again): told it ran
        assert sent.count(PROMPT) == 2 and "They already ran and must not be repeated" in sent


def test_a_call_the_user_allowed_whose_save_failed_still_runs_once_on_the_retry(
    make_runtime, turn_request, dynamo_faults, sessions_root, tmp_path, aws, monkeypatch
) -> None:
    """The allowed call is made again and its save fails: it did not run, so the retry runs
    it (the user's Allow is not spent on a refused call, nor is the agent told it ran)."""
    # The first call waits for approval; the second is excepted.
    rules = {"require_approval": [{"tool": "Bash", "except": [TWO]}]}
    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CLAUDE_CONFIG, config)
    (config / "approvals.json").write_text(json.dumps(rules))
    env = {"CLAUDE_CONFIG_PATH": str(config)}
    monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
    key = SessionKey.parse(KEY)
    asked = make_runtime(env=env).run_turn(turn_request(PROMPT, turn_id=1, user_id=42))
    assert asked.approval_request is not None, asked
    approval_id = asked.approval_request.approval_id
    Approvals(dynamodb=aws.dynamodb, table=aws.resources.table).decide(
        key, approval_id, "once", decided_by="ada"
    )
    outage = SaveOutage(began=lambda: True, tries=SAVE_TRIES)
    dynamo_faults.fail = outage

    allowed = turn_request("", turn_id=2, resume_approval=approval_id)
    failed = make_runtime(dynamodb=dynamo_faults.client, env=env).run_turn(allowed)

    assert len(outage.failed) >= SAVE_TRIES  # the save before the call really failed
    assert failed.error_kind == "internal" and failed.retryable, failed
    assert _ledger(sessions_root) == []  # the call did not run

    dynamo_faults.fail = lambda target, body: False  # the store is back
    retried = make_runtime(env=env).run_turn(allowed)

    assert retried.ok and retried.text == "DONE", retried
    assert _ledger(sessions_root) == ["one", "two"]  # the allowed call ran, once
    assert retried.approval_outcome is not None and retried.approval_outcome.choice == "once"
