"""Turns that meet a stalled container, a stolen lease, a registry outage or the caller's
deadline. Real CLI, scripted model server, moto behind a fault-injecting HTTP proxy."""

from __future__ import annotations

import base64
import os
import random
import threading
import time
from typing import Any

import pytest
from agent_runtime import DEADLINE_MARGIN_S, workspace_paths
from local_stack import ToolCall, last_user_text, tool_results
from session_core import TURN_VERSION, LeaseHeldError, SessionKey, SessionRegistry, TurnResult

from .conftest import stall_past_the_lease

pytestmark = pytest.mark.slow

KEY = "default/1001/0"


def processes_in(directory: str) -> list[int]:
    """Pids whose working directory is ``directory`` (the CLI and its tools run there)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd") == directory:
                    found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.fixture
def registry(aws: Any, lease_clock: Any) -> SessionRegistry:
    return SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table, clock=lease_clock)


def test_update_recorded_by_another_run_is_the_answer(
    make_runtime, model_server, turn_request, dynamo_faults, registry, lease_clock
) -> None:
    key = SessionKey.parse(KEY)
    calls: list[int] = []

    def stalled_then_overtaken(request: dict) -> str:
        calls.append(1)
        if len(calls) == 1:
            # This container stalls: its lease renewals fail and the lease runs out...
            stall_past_the_lease(lease_clock, dynamo_faults)
            # ...while another container answers the same update and records it.
            lease = registry.acquire_lease(key, owner="other-container", duration_s=30)
            registry.record_turn(
                lease,
                result=TurnResult(
                    version=TURN_VERSION,
                    session_key=KEY,
                    turn_id=5,
                    text="answer of the other run",
                    session_id="s-1",
                ),
            )
            registry.release_lease(lease)
        return "answer of this run"

    model_server.responder = stalled_then_overtaken
    runtime = make_runtime(dynamodb=dynamo_faults.client, env={"LEASE_DURATION_S": "3"}, clock=lease_clock)

    result = runtime.run_turn(turn_request("hi", turn_id=5))

    assert "UpdateItem" in dynamo_faults.failed  # the renewals really failed
    assert result.ok and result.replayed, result
    assert result.text == "answer of the other run"
    recorded = registry.get_turn_result(key, 5)
    assert recorded is not None and recorded.text == "answer of the other run"


def test_lease_stolen_mid_turn_stops_the_run_without_recording(
    make_runtime, model_server, turn_request, dynamo_faults, registry, sessions_root, lease_clock
) -> None:
    key = SessionKey.parse(KEY)
    model_done = threading.Event()
    stolen_at: list[float] = []

    def slow_model(request: dict) -> str:
        if not stolen_at:
            stall_past_the_lease(lease_clock, dynamo_faults)  # this container stalls...
            registry.acquire_lease(key, owner="thief", duration_s=60)  # ...its lease is taken...
            stolen_at.append(time.monotonic())
            dynamo_faults.fail = lambda target, body: False  # ...and it wakes up
            lease_clock.advance(1.0)  # at its next renewal it finds the lease gone
        model_done.wait(30)  # a slow model answer
        return "too late"

    model_server.responder = slow_model
    runtime = make_runtime(dynamodb=dynamo_faults.client, env={"LEASE_DURATION_S": "3"}, clock=lease_clock)
    try:
        result = runtime.run_turn(turn_request("long job", turn_id=6))
        returned_at = time.monotonic()
        leftovers = processes_in(workspace_paths(sessions_root, key).cwd)
    finally:
        model_done.set()

    assert result.error_kind == "internal" and result.retryable, result
    assert result.error_reason is None
    assert returned_at - stolen_at[0] < 10  # stopped by the lost lease, not the model's 30 s
    assert leftovers == []  # the CLI and its children are gone
    assert registry.get_turn_result(key, 6) is None
    record = registry.get_session(key)
    assert record is not None and record.turns == 0 and record.head_version == 0
    with pytest.raises(LeaseHeldError):  # the thief's lease was left alone
        registry.acquire_lease(key, owner="someone-else", duration_s=10)


def test_result_is_recorded_after_a_brief_registry_outage(
    make_runtime, model_server, turn_request, dynamo_faults, registry
) -> None:
    # complete_turn's transaction (the only one naming lease_owner) fails five times in a row:
    # more than boto3's own retries of one call.
    dynamo_faults.fail = lambda target, body: (
        target == "TransactWriteItems" and b"lease_owner" in body and len(dynamo_faults.failed) < 5
    )

    result = make_runtime(dynamodb=dynamo_faults.client).run_turn(turn_request("hello", turn_id=8))

    assert result.ok and not result.replayed, result
    assert result.text == "turns=1 last=hello"
    assert dynamo_faults.failed == ["TransactWriteItems"] * 5
    recorded = registry.get_turn_result(SessionKey.parse(KEY), 8)
    assert recorded is not None and recorded.text == result.text
    assert len(model_server.model_calls) == 1  # the paid answer was kept, not bought again


def test_turn_stops_before_the_callers_deadline(
    make_runtime, model_server, turn_request, registry, sessions_root
) -> None:
    key = SessionKey.parse(KEY)
    model_done = threading.Event()

    def long_task(request: dict) -> Any:
        if last_user_text(request) == "first step" and not tool_results(request):
            return [ToolCall(name="Bash", input={"command": "echo step-1", "description": "work"})]
        model_done.wait(30)  # the next step takes longer than the caller waits
        return "finished"

    model_server.responder = long_task
    runtime = make_runtime()

    def run(prompt: str, update_id: int, seconds_left: float) -> tuple[TurnResult, float, float]:
        deadline = time.time() + seconds_left
        result = runtime.run_turn(
            turn_request(prompt, turn_id=update_id, deadline_epoch_ms=int(deadline * 1000))
        )
        return result, time.time(), deadline

    try:
        # 15 s for the CLI's start, the first call and the tool: a loaded machine (CI builds the
        # arm64 image beside the tests) needed more than 5
        spent, spent_at, spent_deadline = run("first step", 11, DEADLINE_MARGIN_S + 15)
        leftovers = processes_in(workspace_paths(sessions_root, key).cwd)
        unspent, unspent_at, unspent_deadline = run("nothing yet", 12, DEADLINE_MARGIN_S + 3)
        late = runtime.run_turn(
            turn_request("too late", turn_id=13, deadline_epoch_ms=int(time.time() * 1000))
        )
    finally:
        model_done.set()

    # The model had already worked: running it again from the start would pay twice.
    assert spent.error_kind == "model_error" and not spent.retryable, spent
    assert spent.error_reason == "timeout"
    assert spent_at < spent_deadline  # answered while the caller still waits
    assert leftovers == []
    # Nothing came back from the model yet: a retry costs nothing extra.
    assert unspent.error_kind == "model_error" and unspent.retryable
    assert unspent_at < unspent_deadline
    # Already past the deadline: not even started.
    assert late.error_kind == "model_error" and late.retryable
    assert not any("too late" in str(c.body) for c in model_server.model_calls)
    for update_id in (11, 12, 13):
        assert registry.get_turn_result(key, update_id) is None


def test_a_paid_answer_the_registry_cannot_take_is_delivered_not_bought_again(
    make_runtime, model_server, turn_request, dynamo_faults, registry
) -> None:
    # Every attempt to record the turn (the only transaction naming lease_owner) fails with a
    # 500 until the caller's deadline; the transcript store's writes go through.
    dynamo_faults.fail = lambda target, body: target == "TransactWriteItems" and b"lease_owner" in body
    deadline_ms = int((time.time() + DEADLINE_MARGIN_S + 15) * 1000)  # room for a loaded machine

    result = make_runtime(dynamodb=dynamo_faults.client).run_turn(
        turn_request("hello", turn_id=21, deadline_epoch_ms=deadline_ms)
    )

    assert "TransactWriteItems" in dynamo_faults.failed
    assert result.ok and result.text == "turns=1 last=hello", result  # the answer, not "try again"
    assert len(model_server.model_calls) == 1
    assert registry.get_turn_result(SessionKey.parse(KEY), 21) is None


def test_an_answer_with_lone_surrogates_is_recorded_with_its_cost_and_replayed(
    make_runtime, model_server, turn_request, registry
) -> None:
    model_server.responder = lambda request: "half an emoji: \ud83d, a stray \udc00."

    first = make_runtime().run_turn(turn_request("hi", turn_id=22))
    again = make_runtime().run_turn(turn_request("hi", turn_id=22))

    assert first.ok and first.text == "half an emoji: \ufffd, a stray \ufffd.", first
    assert again.replayed and again.text == first.text
    assert len(model_server.model_calls) == 1
    session = registry.get_session(SessionKey.parse(KEY))
    assert session is not None and session.turns == 1 and session.cost_usd == first.cost_usd > 0


def test_a_long_answer_is_recorded_and_replayed(make_runtime, model_server, turn_request, registry) -> None:
    # Past a DynamoDB item's 400 KB as text; its record is kept compressed.
    model_server.responder = lambda request: "word " * 90_000

    first = make_runtime().run_turn(turn_request("write a lot", turn_id=24))
    again = make_runtime().run_turn(turn_request("write a lot", turn_id=24))

    assert first.ok and len(first.text) > 400_000, first.error_kind
    assert again.replayed and again.text == first.text
    assert len(model_server.model_calls) == 1


def test_an_answer_too_big_for_its_record_is_delivered_without_retrying_the_record(
    make_runtime, model_server, turn_request, registry, capfd
) -> None:
    # DynamoDB takes items up to 400 KB: an answer bigger than that even compressed (random
    # base64) is refused every time, so retrying its record would only keep the user waiting.
    noise = base64.b64encode(random.Random(23).randbytes(450_000)).decode()
    model_server.responder = lambda request: noise

    result = make_runtime().run_turn(turn_request("write a lot", turn_id=23))

    assert result.ok and len(result.text) > 400_000, result.error_kind
    logged = capfd.readouterr().err
    assert "turn.record_failed" in logged and "turn.record_retry" not in logged
    assert len(model_server.model_calls) == 1
    assert registry.get_turn_result(SessionKey.parse(KEY), 23) is None
