"""[H] A turn the user stops: the runtime learns of the stop from the session's live item
within about a second, kills the CLI and its tools, records what was written so far as the
turn's answer (marked stopped, its metered cost counted) and the next turn resumes normally."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from typing import Any

import pytest
from local_stack import ModelFault, ToolCall, last_user_text, tool_results, user_turns
from session_core import LiveTurns, SessionKey, SessionRegistry

pytestmark = pytest.mark.slow

KEY = "default/1201/0"
# A wait nobody else runs, so its process is findable: drawn per import, as each xdist worker
# imports this file, a test on another worker (or another run) waits for another time.
MARK = f"31.{uuid.uuid4().int % 10**9:09d}"
# Not `sleep N`: the CLI refuses a long leading sleep.
COMMAND = f"python3 -c 'import time; time.sleep({MARK})'"


def stoppable(request: dict[str, Any]) -> Any:
    text = last_user_text(request)
    if text.startswith("long task") and not tool_results(request):
        return [
            "Working on it: first the slow part.",
            ToolCall(name="Bash", input={"command": COMMAND, "description": "slow"}),
        ]
    return f"turns={user_turns(request)} last={text}"


def _sleepers() -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"time.sleep.{MARK}"], capture_output=True, text=True)
    return out.stdout.split()


def test_a_stopped_turn_ends_within_two_seconds_and_the_next_one_resumes(
    aws, make_runtime, model_server, turn_request
) -> None:
    model_server.responder = stoppable
    runtime = make_runtime()
    key = SessionKey.parse(KEY)
    live = LiveTurns(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    results: list[Any] = []
    turn = threading.Thread(
        target=lambda: results.append(runtime.run_turn(turn_request("long task", turn_id=1, session_key=KEY)))
    )
    turn.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = live.progress(key, 1)
        if progress is not None and progress.activity is not None and _sleepers():
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the tool never showed up in the progress: {live.progress(key, 1)}")
    assert progress.activity.name == "Bash" and progress.activity.argument == COMMAND
    assert "Working on it" in progress.text

    stop_at = time.monotonic()
    assert live.request_stop(key) == "stopping"
    turn.join(timeout=30)
    took = time.monotonic() - stop_at
    [stopped] = results
    assert stopped.stopped and stopped.ok, stopped
    assert took < 2.0, f"the stop took {took:.2f} s"
    assert not _sleepers()
    assert stopped.text == "Working on it: first the slow part."
    assert stopped.cost_usd > 0  # the proxy's count of the calls made
    assert live.request_stop(key) == "nothing_running"  # it ended: a late stop finds nothing

    registry = SessionRegistry(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    assert registry.get_turn_result(key, 1).stopped  # recorded: a retry replays it
    assert runtime.run_turn(turn_request("long task", turn_id=1, session_key=KEY)).replayed

    after = runtime.run_turn(turn_request("and now?", turn_id=2, session_key=KEY))
    assert after.ok and not after.stopped, after
    assert after.text == "turns=2 last=and now?"  # the stopped turn is in the history
    record = registry.get_session(key)
    assert record is not None and record.turns == 2
    assert record.cost_usd >= stopped.cost_usd


def test_a_stop_pressed_while_the_runtime_starts_stops_that_turn_and_not_the_next(
    aws, make_runtime, model_server, turn_request
) -> None:
    model_server.responder = stoppable
    runtime = make_runtime()
    key_text = "default/1202/0"
    key = SessionKey.parse(key_text)
    live = LiveTurns(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    assert live.expect(key, 5)  # the consumer, before it invokes the runtime
    assert live.request_stop(key) == "stopping"
    started = time.monotonic()
    stopped = runtime.run_turn(turn_request("long task", turn_id=5, session_key=key_text))
    assert stopped.ok and stopped.stopped and stopped.text == "", stopped
    assert time.monotonic() - started < 15  # not the half minute of its tool
    assert model_server.model_calls == []  # stopped before it began: nothing asked, nothing paid
    assert stopped.cost_usd == 0
    assert not _sleepers()
    assert live.request_stop(key) == "nothing_running"
    assert live.expect(key, 6)
    after = runtime.run_turn(turn_request("and then?", turn_id=6, session_key=key_text))
    assert after.ok and not after.stopped, after
    assert after.text == "turns=1 last=and then?"  # the stopped message never reached the model
    assert runtime.run_turn(turn_request("long task", turn_id=5, session_key=key_text)).replayed


def test_a_retry_stopped_before_it_began_leaves_the_failed_attempts_prompt_out_of_the_conversation(
    aws, make_runtime, model_server, turn_request
) -> None:
    runtime = make_runtime()
    key_text = "default/1203/0"
    key = SessionKey.parse(key_text)
    live = LiveTurns(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    assert runtime.run_turn(turn_request("remember: pineapple", turn_id=1, session_key=key_text)).ok
    # The first run of message 2 fails after its prompt reached the transcript (the model
    # overloaded): the consumer retries it, and the user stops it before the retry begins.
    model_server.inject(ModelFault(status=500), times=5)
    failed = runtime.run_turn(turn_request("delete the backups", turn_id=2, session_key=key_text))
    assert failed.error_kind == "model_error" and failed.retryable, failed
    model_server.clear_faults()
    assert live.expect(key, 2)
    assert live.request_stop(key) == "stopping"
    stopped = runtime.run_turn(turn_request("delete the backups", turn_id=2, session_key=key_text))
    assert stopped.ok and stopped.stopped and stopped.text == "", stopped
    calls = len(model_server.model_calls)
    after = runtime.run_turn(turn_request("and then?", turn_id=3, session_key=key_text))
    assert after.ok and not after.stopped, after
    # The stopped message is not in the conversation: the model never reads it.
    assert after.text == "turns=2 last=and then?"
    assert all(
        "delete the backups" not in json.dumps(c.body["messages"]) for c in model_server.model_calls[calls:]
    )
