"""A turn that reaches a limit (its time, the agent's step limit, its cost cap) after it wrote
something: like a turn the user stops, what was written so far is its answer, marked stopped
by that limit, recorded (a retry replays it, nothing is paid twice). What the agent remembers
of it next time is checked here, as the note under the answer tells the user."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
import uuid
from typing import Any

import pytest
from agent_runtime import DEADLINE_MARGIN_S
from agentbot_testing import KILL_CLI
from local_stack import Streamed, ToolCall, last_user_text, tool_results, user_turns
from session_core import SessionKey, SessionRegistry

pytestmark = pytest.mark.slow

# A wait nobody else runs, so its process is findable (see test_turn_stop.py).
MARK = f"33.{uuid.uuid4().int % 10**9:09d}"
COMMAND = f"python3 -c 'import time; time.sleep({MARK})'"
# The CLI's start, the first call and the tool's start fit well within this on a loaded machine.
TIME_LIMIT_S = 15
# Written in 40 pieces 1 s apart: still being written when the time limit comes.
SLOW_ANSWER = Streamed("Part one of the essay. " + "More words follow here. " * 39, pieces=40, pause_s=1.0)


def responder(request: dict[str, Any]) -> Any:
    text = last_user_text(request)
    if text.startswith("long task") and not tool_results(request):
        return [
            "Working on it: first the slow part.",
            ToolCall(name="Bash", input={"command": COMMAND, "description": "slow"}),
        ]
    if text.startswith("write slowly"):
        return [SLOW_ANSWER]
    if text.startswith("crash") and not tool_results(request):
        return [
            "Looking into it first.",
            ToolCall(name="Bash", input={"command": f"python3 -c {shlex.quote(KILL_CLI)}"}),
        ]
    if text.startswith("two steps"):
        if not tool_results(request):
            return ["Step one: looking around.", ToolCall(name="Bash", input={"command": "echo hi"})]
        return "Step two: done."
    return f"turns={user_turns(request)} last={text}"


def _sleepers() -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"time.sleep.{MARK}"], capture_output=True, text=True)
    return out.stdout.split()


def _seen_by_the_model(model_server: Any, since: int) -> str:
    return "".join(json.dumps(c.body["messages"]) for c in model_server.model_calls[since:])


def test_a_turn_out_of_time_in_a_tool_answers_with_what_it_wrote_recorded_once(
    aws, make_runtime, model_server, turn_request
) -> None:
    model_server.responder = responder
    runtime = make_runtime()
    key_text = "default/1301/0"
    key = SessionKey.parse(key_text)

    timed_out = runtime.run_turn(
        turn_request("long task", turn_id=1, session_key=key_text), time_budget_s=TIME_LIMIT_S
    )

    assert timed_out.ok and timed_out.stopped and timed_out.stop_reason == "timeout", timed_out
    assert timed_out.text == "Working on it: first the slow part."
    assert timed_out.cost_usd > 0  # the proxy's count of the calls made
    assert not _sleepers()
    registry = SessionRegistry(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    saved = registry.get_turn_result(key, 1)
    assert saved is not None and saved.stop_reason == "timeout"  # recorded: a retry replays it
    calls = len(model_server.model_calls)
    replayed = runtime.run_turn(turn_request("long task", turn_id=1, session_key=key_text))
    assert replayed.replayed and replayed.text == timed_out.text
    assert len(model_server.model_calls) == calls  # not run (nor paid) again

    after = runtime.run_turn(turn_request("and now?", turn_id=2, session_key=key_text))
    assert after.ok and not after.stopped, after
    # As after Stop: the message and the steps it finished are in the conversation.
    assert after.text == "turns=2 last=and now?"
    assert "Working on it: first the slow part." in _seen_by_the_model(model_server, calls)


def test_a_turn_out_of_time_while_writing_answers_with_the_text_so_far(
    aws, make_runtime, model_server, turn_request
) -> None:
    model_server.responder = responder
    runtime = make_runtime()
    key_text = "default/1302/0"

    timed_out = runtime.run_turn(
        turn_request("write slowly", turn_id=1, session_key=key_text), time_budget_s=TIME_LIMIT_S
    )

    assert timed_out.ok and timed_out.stopped and timed_out.stop_reason == "timeout", timed_out
    assert timed_out.text.startswith("Part one of the essay.")
    assert len(timed_out.text) < len(SLOW_ANSWER.text)
    calls = len(model_server.model_calls)
    after = runtime.run_turn(turn_request("and now?", turn_id=2, session_key=key_text))
    assert after.ok, after
    # The message is in the conversation, the half-written answer is not: the model never
    # finished it, so the CLI never wrote it to the session's history.
    assert after.text == "turns=2 last=and now?"
    assert "Part one of the essay" not in _seen_by_the_model(model_server, calls)


def test_a_turn_out_of_time_before_it_wrote_anything_fails_as_before(
    aws, make_runtime, model_server, turn_request
) -> None:
    def silent_then_slow(request: dict[str, Any]) -> Any:
        if last_user_text(request).startswith("long task") and not tool_results(request):
            return [ToolCall(name="Bash", input={"command": COMMAND, "description": "slow"})]
        return responder(request)

    model_server.responder = silent_then_slow
    runtime = make_runtime()
    key_text = "default/1303/0"
    assert runtime.run_turn(turn_request("hello", turn_id=1, session_key=key_text)).ok
    timed_out = runtime.run_turn(
        turn_request("long task", turn_id=2, session_key=key_text), time_budget_s=TIME_LIMIT_S
    )
    assert timed_out.error_kind == "model_error" and timed_out.error_reason == "timeout", timed_out
    assert timed_out.timed_out_by == "runtime"  # its own time: the function's Timeout
    assert timed_out.caller_short_by_s is None
    assert not timed_out.retryable  # the model had worked: running it again would pay twice
    assert timed_out.tools_ran  # the user reads that steps may have run
    registry = SessionRegistry(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    assert registry.get_turn_result(SessionKey.parse(key_text), 2) is None
    after = runtime.run_turn(turn_request("and now?", turn_id=3, session_key=key_text))
    assert after.text.startswith("turns=2 last=")  # the unanswered message is left out
    # ... but the agent is told its tool call may have run (cut at the time limit, no result).
    note, message = last_user_text(model_server.model_calls[-1].body).split("\n\n")
    assert message == "and now?"
    assert "may or may not have run" in note and MARK in note, note


def test_a_turn_over_its_cost_cap_after_writing_answers_with_what_it_wrote(
    aws, make_runtime, model_server, turn_request
) -> None:
    model_server.responder = responder
    runtime = make_runtime()
    key_text = "default/1304/0"
    first = runtime.run_turn(turn_request("hello", turn_id=1, session_key=key_text))
    price = first.cost_usd  # one model call
    # The tool step needs a second call; a cap below one call's price stops the run before it.
    capped = runtime.run_turn(
        turn_request("two steps", turn_id=2, session_key=key_text, max_cost_usd=price / 2)
    )
    assert capped.ok and capped.stopped and capped.stop_reason == "max_budget", capped
    assert capped.text == "Step one: looking around."
    assert capped.cost_usd > 0  # what the stopped run paid
    registry = SessionRegistry(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    assert runtime.run_turn(turn_request("two steps", turn_id=2, session_key=key_text)).replayed
    calls = len(model_server.model_calls)
    after = runtime.run_turn(turn_request("and now?", turn_id=3, session_key=key_text))
    assert after.ok and after.text == "turns=3 last=and now?", after
    assert "Step one: looking around." in _seen_by_the_model(model_server, calls)
    record = registry.get_session(SessionKey.parse(key_text))
    assert record is not None and record.turns == 3
    # each counted once: the capped run's calls are not charged again with the next turn
    assert record.cost_usd == pytest.approx(price + capped.cost_usd + after.cost_usd, rel=1e-9)
    assert after.cost_usd < 1.5 * price  # about one call: not the capped run's again


def test_a_turn_at_the_agents_step_limit_after_writing_answers_with_what_it_wrote(
    aws, make_runtime, model_server, turn_request, tools_config, tmp_path, monkeypatch
) -> None:
    config = tmp_path / "claude-config"
    shutil.copytree(tools_config, config)
    agents = json.loads((config / "agents.json").read_text())
    agents["main"]["max_turns"] = 1
    (config / "agents.json").write_text(json.dumps(agents))
    model_server.responder = responder
    monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
    runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config)})
    key_text = "default/1305/0"
    limited = runtime.run_turn(turn_request("two steps", turn_id=1, session_key=key_text))
    assert limited.ok and limited.stopped and limited.stop_reason == "max_turns", limited
    assert limited.text == "Step one: looking around."
    assert runtime.run_turn(turn_request("two steps", turn_id=1, session_key=key_text)).replayed
    calls = len(model_server.model_calls)
    after = runtime.run_turn(turn_request("and now?", turn_id=2, session_key=key_text))
    assert after.ok, after
    # The next message follows the run's steps, what it wrote included.
    [call] = model_server.model_calls[calls:]
    assert json.dumps(call.body["messages"][-2:]).count("Step one: looking around.") == 1
    assert call.body["messages"][-1]["content"][-1]["text"] == "and now?"


def test_a_turn_at_the_agents_step_limit_before_it_wrote_anything_fails_unrecorded_with_its_cost(
    aws, make_runtime, model_server, turn_request, tools_config, tmp_path, monkeypatch
) -> None:
    """What the consumer answers as the operator's limit (not a dead letter): a failure of
    reason ``max_turns``, not retryable (a retry pays for the same steps to be stopped again),
    with what it paid, and no record (the next message leaves it out)."""

    def silent_steps(request: dict[str, Any]) -> Any:
        if last_user_text(request).startswith("two steps") and not tool_results(request):
            return [ToolCall(name="Bash", input={"command": "echo hi"})]
        return responder(request)

    config = tmp_path / "claude-config"
    shutil.copytree(tools_config, config)
    agents = json.loads((config / "agents.json").read_text())
    agents["main"]["max_turns"] = 1
    (config / "agents.json").write_text(json.dumps(agents))
    model_server.responder = silent_steps
    monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
    runtime = make_runtime(env={"CLAUDE_CONFIG_PATH": str(config)})
    key_text = "default/1307/0"
    limited = runtime.run_turn(turn_request("two steps", turn_id=1, session_key=key_text))
    assert limited.error_kind == "model_error" and limited.error_reason == "max_turns", limited
    assert not limited.retryable and not limited.stopped, limited
    assert limited.cost_usd > 0  # for the budgets
    registry = SessionRegistry(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    assert registry.get_turn_result(SessionKey.parse(key_text), 1) is None


def test_a_turn_whose_cli_dies_after_writing_answers_with_what_it_wrote(
    aws, make_runtime, model_server, turn_request
) -> None:
    model_server.responder = responder
    runtime = make_runtime()
    key_text = "default/1306/0"
    crashed = runtime.run_turn(turn_request("crash please", turn_id=1, session_key=key_text))
    assert crashed.ok and crashed.stopped and crashed.stop_reason == "crashed", crashed
    assert crashed.text == "Looking into it first."
    assert crashed.cost_usd > 0  # the proxy's count of the calls made
    calls = len(model_server.model_calls)
    assert runtime.run_turn(turn_request("crash please", turn_id=1, session_key=key_text)).replayed
    assert len(model_server.model_calls) == calls
    after = runtime.run_turn(turn_request("and now?", turn_id=2, session_key=key_text))
    assert after.ok and after.text == "turns=2 last=and now?", after
    assert "Looking into it first." in _seen_by_the_model(model_server, calls)


def test_a_tool_that_edits_the_kept_transcript_then_kills_the_cli_changes_not_the_next_turn(
    aws, make_runtime, model_server, turn_request
) -> None:
    """The crashed turn is recorded now: what the next turn reads is still what the store
    holds, not the file the tool rewrote before it killed the CLI."""
    # (the pattern is written so that the command's own text holds neither word)
    tamper = (
        'for f in "$CLAUDE_CONFIG_DIR"/projects/*/*.jsonl; do sed -i "s/h[e]ron/EAG""LE/g" "$f"; done; '
        f"python3 -c {shlex.quote(KILL_CLI)}"
    )

    def tampering(request: dict[str, Any]) -> Any:
        if last_user_text(request).startswith("tamper") and not tool_results(request):
            return ["Tidying up first.", ToolCall(name="Bash", input={"command": tamper})]
        return responder(request)

    model_server.responder = tampering
    runtime = make_runtime()
    key_text = "default/1308/0"
    assert runtime.run_turn(turn_request("the bird is a heron", turn_id=1, session_key=key_text)).ok
    crashed = runtime.run_turn(turn_request("tamper", turn_id=2, session_key=key_text))
    assert crashed.ok and crashed.stop_reason == "crashed", crashed
    calls = len(model_server.model_calls)
    after = runtime.run_turn(turn_request("which bird?", turn_id=3, session_key=key_text))
    assert after.ok and after.text == "turns=3 last=which bird?", after
    sent = _seen_by_the_model(model_server, calls)
    assert "the bird is a heron" in sent and "EAGLE" not in sent and "Tidying up first." in sent


def _unanswered_tool_calls(messages: list[dict[str, Any]]) -> list[str]:
    """The tool_use ids the Messages API would refuse: not answered by a tool_result in the
    user message right after them (the scripted server checks nothing of the kind)."""
    unanswered: list[str] = []
    for i, message in enumerate(messages):
        content = message["content"] if isinstance(message["content"], list) else []
        calls = [b["id"] for b in content if message["role"] == "assistant" and b.get("type") == "tool_use"]
        following = messages[i + 1] if i + 1 < len(messages) else {"role": "", "content": []}
        answered = {
            b.get("tool_use_id")
            for b in following["content"]
            if following["role"] == "user" and isinstance(b, dict) and b.get("type") == "tool_result"
        }
        unanswered += [call for call in calls if call not in answered]
    return unanswered


@pytest.mark.parametrize("ending", ["timeout", "crashed"])
def test_the_turn_after_one_that_ended_amid_tool_calls_sends_the_model_every_call_answered(
    aws, make_runtime, model_server, turn_request, ending
) -> None:
    """The recorded turn ends with calls the CLI never answered (one done, one cut off): the
    next turn's history must still pair each tool_use with a tool_result, or the Messages API
    refuses every later message of the chat. The CLI fills in the missing ones on resume."""
    last = COMMAND if ending == "timeout" else f"python3 -c {shlex.quote(KILL_CLI)}"

    def two_calls(request: dict[str, Any]) -> Any:
        if last_user_text(request).startswith("two calls") and not tool_results(request):
            return [
                "Two things at once.",
                ToolCall(name="Bash", input={"command": "echo quick-one"}),
                ToolCall(name="Bash", input={"command": last}),
            ]
        return responder(request)

    model_server.responder = two_calls
    runtime = make_runtime()
    key_text = f"default/{1309 if ending == 'timeout' else 1310}/0"
    ended = runtime.run_turn(
        turn_request("two calls", turn_id=1, session_key=key_text), time_budget_s=TIME_LIMIT_S
    )
    assert ended.ok and ended.stop_reason == ending, ended
    after = runtime.run_turn(turn_request("and now?", turn_id=2, session_key=key_text))
    assert after.ok and after.text == "turns=2 last=and now?", after
    messages = model_server.model_calls[-1].body["messages"]
    assert "Two things at once." in json.dumps(messages)
    assert _unanswered_tool_calls(messages) == []


@pytest.mark.parametrize("limit", ["timeout", "max_budget", "crashed"])
def test_a_turn_stopped_by_a_limit_that_cannot_be_recorded_fails_as_before_instead_of_promising_memory(
    aws, make_runtime, model_server, turn_request, dynamo_faults, limit
) -> None:
    """The note under a limit-stopped answer says the next message follows its steps; when the
    registry refuses to record it, the next message leaves it out: the turn fails as one
    stopped before it wrote anything (what it paid still counted), not with a false note."""
    model_server.responder = responder
    runtime = make_runtime(dynamodb=dynamo_faults.client)
    key_text = f"default/{1311 + ['timeout', 'max_budget', 'crashed'].index(limit)}/0"
    price = runtime.run_turn(turn_request("hello", turn_id=1, session_key=key_text)).cost_usd
    # Every attempt to record a turn (the only transaction naming lease_owner) fails with a 500.
    dynamo_faults.fail = lambda target, body: target == "TransactWriteItems" and b"lease_owner" in body
    # (a deadline, or the record is tried for a minute)
    deadline_ms = int((time.time() + DEADLINE_MARGIN_S + 20) * 1000)
    if limit == "timeout":
        request = turn_request("long task", turn_id=2, session_key=key_text)
        ended = runtime.run_turn(request, time_budget_s=TIME_LIMIT_S)
    else:
        prompt, cap = ("crash please", None) if limit == "crashed" else ("two steps", price / 2)
        request = turn_request(
            prompt, turn_id=2, session_key=key_text, max_cost_usd=cap, deadline_epoch_ms=deadline_ms
        )
        ended = runtime.run_turn(request)

    assert "TransactWriteItems" in dynamo_faults.failed
    assert not ended.stopped and not ended.ok and not ended.retryable, ended
    assert ended.error_reason == (None if limit == "crashed" else limit), ended
    assert ended.cost_usd > 0 and ended.tools_ran  # for the budgets; the user reads steps may have run
    dynamo_faults.fail = lambda target, body: False
    after = runtime.run_turn(turn_request("and now?", turn_id=3, session_key=key_text))
    assert after.ok and after.text.startswith("turns=2 last="), after  # the message is left out,
    note, message = last_user_text(model_server.model_calls[-1].body).split("\n\n")
    assert message == "and now?" and "may or may not have run" in note, note  # its tool call named


def test_a_turn_out_of_time_because_its_callers_deadline_came_first_says_whose_time_it_was(
    make_runtime, model_server, turn_request
) -> None:
    """The consumer had spent most of its invocation before the turn (a long wait for the
    chat's previous turn, a voice transcription): its deadline, not the runtime's own time,
    cut the turn. It was told and logged as the runtime's Timeout, the setting that did not
    stop it."""

    def slow(request: dict[str, Any]) -> Any:
        if last_user_text(request).startswith("long task") and not tool_results(request):
            return [ToolCall(name="Bash", input={"command": COMMAND, "description": "slow"})]
        return responder(request)

    model_server.responder = slow
    runtime = make_runtime()
    deadline_ms = int((time.time() + DEADLINE_MARGIN_S + TIME_LIMIT_S) * 1000)
    timed_out = runtime.run_turn(
        turn_request("long task", turn_id=1, session_key="default/1320/0", deadline_epoch_ms=deadline_ms),
        time_budget_s=120,  # the runtime's own time: far more than the caller left it
    )
    assert timed_out.error_reason == "timeout" and not timed_out.retryable, timed_out
    assert timed_out.timed_out_by == "caller"
    # By how much the caller's deadline came first: a wait of the caller's at least this long
    # is what cut the turn (its own Timeout, less what it keeps, would have covered the run).
    assert timed_out.caller_short_by_s is not None
    assert 120 - TIME_LIMIT_S - 5 <= timed_out.caller_short_by_s <= 120 - TIME_LIMIT_S, timed_out
