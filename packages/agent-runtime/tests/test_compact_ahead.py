"""A chat whose transcript outgrows the memory with few tokens (photos the agent read are kept
as base64) is never compacted by the CLI, which compacts only when the context fills: the
runtime has it compact first, while the history still loads, so the chat goes on instead of
being refused at its limit (real CLI, moto storage, the runtime's memory set low enough that a
~1.4 MB history nears its limit)."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from agent_runtime import transcript_project
from agent_runtime._history_limit import (
    BASE_MIB,
    HEADROOM,
    MIB_PER_HISTORY_MB,
    WARN_SHARE,
    compact_first,
    history_size,
)
from agent_runtime._loaded_history import bytes_the_cli_loads
from agentbot_testing import LOOKUP_ANSWER, HttpMcpServer, claude_config_without_approvals
from local_stack import (
    CallUsage,
    ModelFault,
    ModelServer,
    ToolCall,
    is_summary_request,
    last_user_text,
    tool_results,
)
from session_core import LiveTurns, SessionKey, SessionRegistry

from .conftest import flow_responder, stall_past_the_lease

pytestmark = pytest.mark.slow

KEY = "default/1001/0"
# Every call of a turn reports this usage, far from a full context: the CLI never compacts on
# its own. The summary costs exactly SUMMARY_CALLS times as much, to tell it in the turn's cost.
PER_CALL = CallUsage(input_tokens=1_000, output_tokens=100)
SUMMARY_CALLS = 20
SUMMARY_USAGE = CallUsage(input_tokens=SUMMARY_CALLS * 1_000, output_tokens=SUMMARY_CALLS * 100)
SUMMARY = "<summary>The user asked to remember a long text of lorem ipsum.</summary>"
# ~0.72 MB of history: this prompt and the model's echo of it.
LONG_PROMPT = "remember this: " + "lorem ipsum " * 30_000


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    server = ModelServer(usage=PER_CALL)

    def respond(request: dict[str, Any]) -> Any:
        # The usage is read after the reply is chosen: the summary's own is that call's.
        server.usage = SUMMARY_USAGE if is_summary_request(request) else PER_CALL
        return SUMMARY if is_summary_request(request) else flow_responder(request)

    server.responder = respond
    with server:
        yield server


def stored_and_loaded_mb(runtime: Any, session_id: str) -> tuple[float, float]:
    project = transcript_project(SessionKey.parse(KEY))
    stored = asyncio.run(runtime.store.load_stored({"project_key": project, "session_id": session_id}))
    assert stored is not None
    return stored.size / 1_000_000, bytes_the_cli_loads(stored) / 1_000_000


def memory_for_an_uncompacted_limit_at(limit_mb: float) -> int:
    """The function memory (MB) whose limit for a history never compacted is about ``limit_mb``."""
    return math.ceil((BASE_MIB + MIB_PER_HISTORY_MB * limit_mb) / (1 - HEADROOM))


def a_long_uncompacted_chat(make_runtime: Any, turn_request: Any) -> tuple[str, float, int, float]:
    """Two long turns (~1.4 MB, few tokens), the CLI never compacting: the session, its
    history's MB, a memory whose limit is 10 % above it (inside the warning's 80 %), and the
    price of one call (the second turn's)."""
    for turn_id in (1, 2):
        answer = make_runtime().run_turn(turn_request(LONG_PROMPT, turn_id=turn_id))
        assert answer.ok and not answer.summarised, answer
    session = answer.session_id or ""
    history, loaded = stored_and_loaded_mb(make_runtime(), session)
    assert loaded == history  # the CLI would load it all
    return session, history, memory_for_an_uncompacted_limit_at(history * 1.1), answer.cost_usd


def test_a_1024_mb_runtime_compacts_ahead_from_80_percent_of_an_uncompacted_historys_limit() -> None:
    limit = (1024 * (1 - HEADROOM) - BASE_MIB) / MIB_PER_HISTORY_MB  # ~65 MB

    def ahead(loaded_mb: float, stored_mb: float | None = None, *, at_end: bool = True) -> bool:
        stored, loaded = int((stored_mb or loaded_mb) * 1_000_000), int(loaded_mb * 1_000_000)
        history = history_size(stored, 1024, loaded_bytes=loaded)
        return compact_first(history, 1024, loaded_bytes=loaded, resumes_at_end=at_end)

    assert 51 < WARN_SHARE * limit < 53
    assert not ahead(WARN_SHARE * limit - 0.01)
    assert ahead(WARN_SHARE * limit + 0.01)
    assert ahead(WARN_SHARE * limit + 0.01, stored_mb=90)  # compacted long ago, grown since
    assert not ahead(5, stored_mb=200)  # compacted lately: the CLI loads little
    assert not ahead(limit + 1)  # too large: refused, the compaction could not load it either
    assert not ahead(WARN_SHARE * limit + 0.01, at_end=False)  # a retry resuming before its attempt
    assert not compact_first(None, 0, loaded_bytes=60_000_000, resumes_at_end=True)  # not on Lambda
    assert not compact_first(None, 1024, loaded_bytes=None, resumes_at_end=True)  # the SDK restores it


def test_a_long_history_is_compacted_before_the_turn_and_the_chat_goes_on(
    make_runtime, model_server, turn_request, fresh_container
) -> None:
    session, history, memory, _ = a_long_uncompacted_chat(make_runtime, turn_request)
    calls = len(model_server.model_calls)

    fresh_container()
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
    answer = make_runtime(env=small).run_turn(turn_request("and now?", turn_id=3))

    assert answer.ok and answer.text.endswith("last=and now?"), answer
    assert answer.session_id == session
    turn = [call.body for call in model_server.model_calls[calls:]]
    assert is_summary_request(turn[0])  # the summary first, then the message
    assert len(turn) == 2 and not is_summary_request(turn[1])
    sent = json.dumps(turn[1]["messages"])
    assert "remember a long text of lorem ipsum" in sent and "and now?" in sent
    # The long messages are summarised away (the CLI keeps the last answer after the summary).
    assert not any("remember this:" in json.dumps(m) for m in turn[1]["messages"] if m["role"] == "user")
    assert answer.summarised  # /status says when
    # The warning line under the answer was the uncompacted history's (91 % of its limit): the
    # compacted one is well inside its own.
    assert answer.history is None, answer.history
    _, loaded = stored_and_loaded_mb(make_runtime(), session)
    assert loaded < history / 3  # the summary, and the last answer the CLI keeps with it

    fresh_container()
    calls = len(model_server.model_calls)
    later = make_runtime(env=small).run_turn(turn_request("still there?", turn_id=4))

    assert later.ok and later.text.endswith("last=still there?"), later
    assert later.session_id == session and not later.summarised
    assert not any(is_summary_request(call.body) for call in model_server.model_calls[calls:])


def test_a_chat_that_used_a_subagent_is_compacted_ahead_and_its_subagent_kept(
    make_runtime, model_server, turn_request, fresh_container, sessions_root
) -> None:
    """A session with a subagent's transcript resumes from its own files like any other (it
    went through the SDK's own resume, all of it counted, never compacted ahead): measured by
    what the CLI loads, compacted ahead, and the subagent's transcript where the CLI keeps it."""
    for turn_id in (1, 2):
        assert make_runtime().run_turn(turn_request(LONG_PROMPT, turn_id=turn_id)).ok
    delegated = make_runtime().run_turn(turn_request("agent: the cat sat on the mat", turn_id=3))
    assert delegated.ok and "SUBAGENT-SUMMARY" in delegated.text, delegated
    history, _ = stored_and_loaded_mb(make_runtime(), delegated.session_id or "")
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_for_an_uncompacted_limit_at(history * 1.1))}
    calls = len(model_server.model_calls)

    fresh_container()
    answer = make_runtime(env=small).run_turn(turn_request("and now?", turn_id=4))

    assert answer.ok and answer.text.endswith("last=and now?"), answer
    assert answer.session_id == delegated.session_id and answer.summarised
    turn = [call.body for call in model_server.model_calls[calls:]]
    assert is_summary_request(turn[0]) and not is_summary_request(turn[-1])
    [kept] = sessions_root.rglob("subagents/agent-*.jsonl")  # the new container's, from the store
    assert "the cat sat on the mat" in kept.read_text()


def test_the_compaction_ahead_is_paid_as_the_turns(
    make_runtime, model_server, turn_request, fresh_container
) -> None:
    _, _, memory, one_call = a_long_uncompacted_chat(make_runtime, turn_request)
    assert one_call > 0

    fresh_container()
    answer = make_runtime(env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}).run_turn(
        turn_request("and now?", turn_id=3)
    )

    assert answer.ok and answer.summarised, answer
    # The summary's call and the answer's, as for a compaction the CLI makes within a turn.
    assert answer.cost_usd == pytest.approx((SUMMARY_CALLS + 1) * one_call, rel=0.01)
    assert answer.usage.input_tokens == (SUMMARY_CALLS + 1) * PER_CALL.input_tokens


def test_a_failed_compaction_still_answers_on_the_history_as_it_was(
    make_runtime, model_server, turn_request, fresh_container, capsys
) -> None:
    session, _, memory, _ = a_long_uncompacted_chat(make_runtime, turn_request)
    calls = len(model_server.model_calls)
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}

    fresh_container()
    model_server.inject(ModelFault(status=500))  # the turn's first call: the summary
    answer = make_runtime(env=small).run_turn(turn_request("and now?", turn_id=3))

    assert answer.ok and answer.text.endswith("last=and now?"), answer
    assert answer.session_id == session and not answer.summarised
    turn = [call.body for call in model_server.model_calls[calls:]]
    assert is_summary_request(turn[0]) and not is_summary_request(turn[-1])
    sent = json.dumps(turn[-1]["messages"])
    assert sent.count("and now?") == 1 and "lorem ipsum lorem ipsum" in sent
    # The runtime's command and its error (which names the model's endpoint) are no part of it.
    assert "/compact" not in sent and "Error during compaction" not in sent
    assert answer.history is not None and not answer.history.too_large  # still warned
    logged = capsys.readouterr()
    assert "turn.compact_ahead_failed" in logged.out + logged.err

    # The next message compacts ahead again, and reads the chat as it was.
    fresh_container()
    calls = len(model_server.model_calls)
    later = make_runtime(env=small).run_turn(turn_request("still there?", turn_id=4))
    assert later.ok and later.summarised and later.text.endswith("last=still there?"), later
    turn = [call.body for call in model_server.model_calls[calls:]]
    assert is_summary_request(turn[0])
    assert "and now?" in json.dumps(turn[0]["messages"])  # the answered turn is summarised too
    assert json.dumps(turn[-1]["messages"]).count("still there?") == 1


def test_a_turn_that_fails_after_its_compaction_ahead_is_retried_on_the_compacted_history(
    make_runtime, model_server, turn_request, fresh_container
) -> None:
    session, _, memory, _ = a_long_uncompacted_chat(make_runtime, turn_request)
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
    respond = model_server.responder

    def fail_after_the_summary(request: dict[str, Any]) -> Any:
        if is_summary_request(request):
            model_server.inject(ModelFault(status=500))  # the message's own call
        return respond(request)

    model_server.responder = fail_after_the_summary
    fresh_container()
    failed = make_runtime(env=small).run_turn(turn_request("and now?", turn_id=3))
    assert failed.error_kind == "model_error" and failed.retryable, failed
    assert failed.cost_usd > 0  # the summary was paid for

    model_server.responder = respond
    fresh_container()
    calls = len(model_server.model_calls)
    retried = make_runtime(env=small).run_turn(turn_request("and now?", turn_id=3))

    assert retried.ok and retried.text.endswith("last=and now?"), retried
    assert retried.session_id == session
    turn = [call.body for call in model_server.model_calls[calls:]]
    assert not any(is_summary_request(body) for body in turn)  # compacted already
    sent = json.dumps(turn[-1]["messages"])
    assert "remember a long text of lorem ipsum" in sent and sent.count("and now?") == 1
    assert retried.summarised  # its answer is the first the summary is under


def test_a_history_outside_the_zone_is_never_compacted_ahead(
    make_runtime, model_server, turn_request, fresh_container
) -> None:
    _, history, _, _ = a_long_uncompacted_chat(make_runtime, turn_request)
    not_on_lambda: dict[str, str] = {}  # memory unknown: no limit at all
    roomy = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_for_an_uncompacted_limit_at(history * 2))}
    for turn_id, env in ((3, not_on_lambda), (4, roomy)):
        fresh_container()
        calls = len(model_server.model_calls)
        answer = make_runtime(env=env).run_turn(turn_request("and now?", turn_id=turn_id))
        assert answer.ok and not answer.summarised, answer
        assert not any(is_summary_request(call.body) for call in model_server.model_calls[calls:])


def test_the_message_after_a_turn_that_failed_after_its_compaction_ahead_is_summarised(
    make_runtime, model_server, turn_request, fresh_container
) -> None:
    """The failed turn is left out, not its compaction: the next message resumes after the
    summary, and its answer is the first recorded under it (for /status)."""
    session, _, memory, _ = a_long_uncompacted_chat(make_runtime, turn_request)
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
    respond = model_server.responder

    def fail_after_the_summary(request: dict[str, Any]) -> Any:
        if is_summary_request(request):
            model_server.inject(ModelFault(status=500))
        return respond(request)

    model_server.responder = fail_after_the_summary
    failed = make_runtime(env=small).run_turn(turn_request("and now?", turn_id=3))
    assert failed.error_kind == "model_error", failed

    model_server.responder = respond
    calls = len(model_server.model_calls)
    later = make_runtime(env=small).run_turn(turn_request("something else", turn_id=4))

    assert later.ok and later.summarised and later.session_id == session, later
    sent = [call.body for call in model_server.model_calls[calls:]]
    assert not any(is_summary_request(body) for body in sent)
    assert "remember a long text of lorem ipsum" in json.dumps(sent[-1]["messages"])


def test_a_compaction_ahead_that_uses_up_the_turns_cap_ends_the_turn_at_its_cap(
    aws, make_runtime, model_server, turn_request, fresh_container
) -> None:
    """The summary cost more than the turn may spend (MaxTurnCostUsd): the turn stops there, as
    at a compaction the CLI makes mid-turn, paid once; the next message runs on the summary.
    The message was run with a cap of $0, which the CLI refuses to start with (an internal
    error, retried: the retry then spent a whole cap more on the same message)."""
    session, _, memory, one_call = a_long_uncompacted_chat(make_runtime, turn_request)
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
    calls = len(model_server.model_calls)

    fresh_container()
    capped = make_runtime(env=small).run_turn(
        turn_request("and now?", turn_id=3, max_cost_usd=(SUMMARY_CALLS / 4) * one_call)
    )

    assert capped.error_kind == "model_error" and capped.error_reason == "max_budget", capped
    assert not capped.retryable  # nothing is run again for it
    assert capped.cost_usd == pytest.approx(SUMMARY_CALLS * one_call, rel=0.01)  # the summary's
    turn = [call.body for call in model_server.model_calls[calls:]]
    assert len(turn) == 1 and is_summary_request(turn[0])

    calls = len(model_server.model_calls)
    later = make_runtime(env=small).run_turn(turn_request("still there?", turn_id=4))
    assert later.ok and later.session_id == session and later.text.endswith("last=still there?"), later
    assert later.summarised  # the first answer under the summary: /status says when
    sent = [call.body for call in model_server.model_calls[calls:]]
    assert len(sent) == 1 and not is_summary_request(sent[0])  # compacted already
    assert "remember a long text of lorem ipsum" in json.dumps(sent[0]["messages"])
    assert later.cost_usd == pytest.approx(one_call, rel=0.01)  # the summary is not paid twice
    record = SessionRegistry(dynamodb=aws.client("dynamodb"), table=aws.resources.table).get_session(
        SessionKey.parse(KEY)
    )
    assert record is not None
    assert record.cost_usd == pytest.approx((2 + SUMMARY_CALLS + 1) * one_call, rel=0.01)


def test_a_failed_compaction_ahead_the_message_never_ran_after_is_left_out_of_the_chat(
    make_runtime, model_server, turn_request, fresh_container
) -> None:
    """The compaction failed (paid: the summary came back empty) and its turn ended before its
    message ran (here the summary cost the turn's cap): the next message resumes where the
    conversation ended before the runtime's /compact, and compacts ahead from there. It resumed
    at the transcript's end: the model read the command and the CLI's error as the chat's."""
    session, _, memory, one_call = a_long_uncompacted_chat(make_runtime, turn_request)
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
    respond = model_server.responder

    def empty_summary(request: dict[str, Any]) -> Any:
        if is_summary_request(request):
            model_server.usage = SUMMARY_USAGE
            return ""  # the CLI: "Error during compaction: summarization produced empty response"
        return respond(request)

    model_server.responder = empty_summary
    fresh_container()
    capped = make_runtime(env=small).run_turn(
        turn_request("and now?", turn_id=3, max_cost_usd=(SUMMARY_CALLS / 4) * one_call)
    )
    assert capped.error_reason == "max_budget" and not capped.retryable, capped

    model_server.responder = respond
    calls = len(model_server.model_calls)
    later = make_runtime(env=small).run_turn(turn_request("still there?", turn_id=4))

    assert later.ok and later.session_id == session and later.text.endswith("last=still there?"), later
    turn = [json.dumps(call.body["messages"]) for call in model_server.model_calls[calls:]]
    assert len(turn) == 2 and is_summary_request(model_server.model_calls[calls].body)  # it tries again
    assert later.summarised
    for sent in turn:
        assert "Error during compaction" not in sent and "empty response" not in sent


def _pressing_stop(
    model_server: ModelServer, live: LiveTurns, turn_id: int, *, then: Literal["wait", "answer"]
) -> Any:
    """A responder that presses Stop as the summary is asked for; ``then`` "wait": the summary
    comes only once the turn says it stopped (or after a long while), "answer": at once."""
    respond = model_server.responder
    key = SessionKey.parse(KEY)

    def stop_then_respond(request: dict[str, Any]) -> Any:
        if is_summary_request(request):
            assert live.request_stop(key) == "stopping"
            deadline = time.monotonic() + 30
            while then == "wait" and time.monotonic() < deadline:
                progress = live.progress(key, turn_id)
                if progress is not None and progress.stopped:
                    break
                time.sleep(0.1)
        return respond(request)

    return stop_then_respond


def _ended_at_its_summary(
    make_runtime: Any,
    model_server: ModelServer,
    live: LiveTurns,
    turn_request: Any,
    env: dict[str, str],
    *,
    stop: bool = True,
    max_cost_usd: float | None = None,
) -> Any:
    """Run turn 3, compacted ahead: with ``stop`` the user presses Stop as its summary is asked
    for, and the runtime sees it before the message runs; with ``max_cost_usd`` the summary may
    cost the whole cap. Its answer (the model's responder is as before after it)."""
    respond = model_server.responder
    if stop:
        model_server.responder = _pressing_stop(model_server, live, 3, then="answer")
    runtime = make_runtime(env=env)
    # Pressed between two looks of the runtime for a stop: it sees it before the message runs.
    runtime.progress_interval_s = 120.0
    try:
        return runtime.run_turn(turn_request("and now?", turn_id=3, max_cost_usd=max_cost_usd))
    finally:
        model_server.responder = respond


def _stopped_in_its_message(runtime: Any, live: LiveTurns, turn_request: Any, turn_id: int) -> Any:
    """Run turn ``turn_id``, whose message runs a slow tool, and press Stop once the tool runs:
    the stopped answer."""
    # Not `sleep N`: the CLI refuses a long leading sleep.
    request = turn_request("bash: python3 -c 'import time; time.sleep(45.25)'", turn_id=turn_id)
    results: list[Any] = []
    turn = threading.Thread(target=lambda: results.append(runtime.run_turn(request)))
    turn.start()
    key, deadline = SessionKey.parse(KEY), time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = live.progress(key, turn_id)
        if progress is not None and progress.activity is not None:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the tool never showed up in the progress: {live.progress(key, turn_id)}")
    assert live.request_stop(key) == "stopping"
    turn.join(timeout=60)
    [stopped] = results
    return stopped


def _logged_count(capsys: Any, event: str) -> int:
    logged = capsys.readouterr()
    return (logged.out + logged.err).count(event)


def test_a_stop_during_the_compaction_ahead_ends_the_turn_before_its_message_runs(
    aws, make_runtime, model_server, turn_request, fresh_container, capsys
) -> None:
    """The user pressed Stop while the summary was written: the turn ends stopped there, its
    message's CLI never started (it was started, stopped at once, and the stop told twice)."""
    session, _, memory, _ = a_long_uncompacted_chat(make_runtime, turn_request)
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
    live = LiveTurns(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    respond = model_server.responder
    model_server.responder = _pressing_stop(model_server, live, 3, then="wait")
    calls = len(model_server.model_calls)
    capsys.readouterr()

    fresh_container()
    stopped = make_runtime(env=small).run_turn(turn_request("and now?", turn_id=3))

    assert stopped.ok and stopped.stopped and stopped.text == "", stopped
    assert not stopped.summarised
    turn = [call.body for call in model_server.model_calls[calls:]]
    assert len(turn) == 1 and is_summary_request(turn[0])  # the message never reached the model
    assert _logged_count(capsys, "turn.cli_stopped") == 1  # the compaction's CLI, no other

    # The next message compacts ahead again, on the chat as it was before the stopped /compact.
    model_server.responder = respond
    calls = len(model_server.model_calls)
    later = make_runtime(env=small).run_turn(turn_request("still there?", turn_id=4))
    assert later.ok and later.session_id == session and later.text.endswith("last=still there?"), later
    assert later.summarised
    turn = [call.body for call in model_server.model_calls[calls:]]
    assert len(turn) == 2 and is_summary_request(turn[0])
    summarised = json.dumps(turn[0]["messages"])
    assert "<command-name>/compact" not in summarised and "and now?" not in summarised
    assert json.dumps(turn[1]["messages"]).count("<command-name>/compact") == 1  # its own


def test_a_lease_lost_during_the_compaction_ahead_ends_the_turn_before_its_message_runs(
    make_runtime, model_server, turn_request, fresh_container, dynamo_faults, lease_clock, aws, capsys
) -> None:
    """The container stalled and another took the chat while the summary was written: the turn
    ends there (a retry runs it), its message's CLI never started."""
    _, _, memory, _ = a_long_uncompacted_chat(
        lambda **kw: make_runtime(clock=lease_clock, **kw), turn_request
    )
    env = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory), "LEASE_DURATION_S": "3"}
    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table, clock=lease_clock)
    respond = model_server.responder
    thief: list[Any] = []

    def lose_the_lease_during_the_summary(request: dict[str, Any]) -> Any:
        if is_summary_request(request) and not thief:
            stall_past_the_lease(lease_clock, dynamo_faults)
            thief.append(registry.acquire_lease(SessionKey.parse(KEY), owner="thief", duration_s=60))
            dynamo_faults.fail = lambda target, body: False
            lease_clock.advance(1.0)  # the next renewal finds the lease gone
            lease_clock.wait_for(lambda: lease_clock.sleeping == 0, "the runtime to see it", timeout_s=30)
        return respond(request)

    model_server.responder = lose_the_lease_during_the_summary
    calls = len(model_server.model_calls)
    capsys.readouterr()

    fresh_container()
    runtime = make_runtime(dynamodb=dynamo_faults.client, env=env, clock=lease_clock)
    lost = runtime.run_turn(turn_request("and now?", turn_id=3))

    assert lost.error_kind == "internal" and lost.retryable, lost
    turn = [call.body for call in model_server.model_calls[calls:]]
    assert len(turn) == 1 and is_summary_request(turn[0])  # the message never reached the model
    assert _logged_count(capsys, "turn.cli_stopped") == 1  # the compaction's CLI, no other
    registry.release_lease(thief[0])


@pytest.mark.parametrize("cap", ["none", "the_summarys_cost"])
def test_a_stop_right_after_the_compaction_ahead_ends_the_turn_stopped_with_the_summary_recorded_once(
    aws, make_runtime, model_server, turn_request, fresh_container, cap
) -> None:
    """The summary was written and the user pressed Stop before the message ran: the turn ends
    stopped, marked summarised and its summary paid, also when the summary cost the whole cap
    (the user's stop wins: it ended as max_budget). The next message is not marked summarised
    again (/status then showed its later time as the last summary)."""
    session, _, memory, one_call = a_long_uncompacted_chat(make_runtime, turn_request)
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
    live = LiveTurns(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    registry = SessionRegistry(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    calls = len(model_server.model_calls)

    fresh_container()
    max_cost = None if cap == "none" else (SUMMARY_CALLS / 4) * one_call
    stopped = _ended_at_its_summary(
        make_runtime, model_server, live, turn_request, small, max_cost_usd=max_cost
    )

    assert stopped.ok and stopped.stopped and stopped.text == "", stopped
    assert stopped.summarised  # the answer the summary is under
    assert stopped.cost_usd == pytest.approx(SUMMARY_CALLS * one_call, rel=0.01)
    turn = [call.body for call in model_server.model_calls[calls:]]
    assert len(turn) == 1 and is_summary_request(turn[0])  # the message never reached the model
    record = registry.get_session(SessionKey.parse(KEY))
    assert record is not None and record.summarised_at is not None
    summarised_at = record.summarised_at

    calls = len(model_server.model_calls)
    later = make_runtime(env=small).run_turn(turn_request("still there?", turn_id=4))

    assert later.ok and later.session_id == session and later.text.endswith("last=still there?"), later
    assert not later.summarised
    sent = [call.body for call in model_server.model_calls[calls:]]
    assert len(sent) == 1 and not is_summary_request(sent[0])  # compacted already
    assert "remember a long text of lorem ipsum" in json.dumps(sent[0]["messages"])
    assert later.cost_usd == pytest.approx(one_call, rel=0.01)  # the summary is not paid twice
    record = registry.get_session(SessionKey.parse(KEY))
    assert record is not None and record.summarised_at == summarised_at  # /status: the stopped turn's


def test_a_stop_while_the_message_runs_after_its_compaction_ahead_records_the_summary_once(
    aws, make_runtime, model_server, turn_request, fresh_container
) -> None:
    """Stopped while its message's tool ran, after the summary: that answer is the one marked
    summarised, and the next message is not marked again."""
    session, _, memory, _ = a_long_uncompacted_chat(make_runtime, turn_request)
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
    live = LiveTurns(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    fresh_container()
    stopped = _stopped_in_its_message(make_runtime(env=small), live, turn_request, 3)
    assert stopped.ok and stopped.stopped and stopped.summarised, stopped

    later = make_runtime(env=small).run_turn(turn_request("still there?", turn_id=4))
    assert later.ok and later.session_id == session and later.text.endswith("last=still there?"), later
    assert not later.summarised


def test_the_retry_of_a_turn_whose_compaction_ahead_failed_pays_for_no_second_summary(
    aws, make_runtime, model_server, turn_request, fresh_container
) -> None:
    """The compaction failed after the model answered (paid: the summary came back empty), then
    the message's CLI could not start: the turn failed before anything of its message was
    written, and is retried. The retry ran /compact again and the user paid a second failed
    summary for the one message; it now runs the message on the history as it was (the next
    message compacts ahead again)."""
    session, _, memory, one_call = a_long_uncompacted_chat(make_runtime, turn_request)
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
    respond = model_server.responder
    fresh_container()
    runtime = make_runtime(env=small)

    def empty_summary_then_no_cli(request: dict[str, Any]) -> Any:
        if is_summary_request(request):
            runtime.cli_path = "/bin/false"  # the message's CLI exits at once, writing nothing
            model_server.usage = SUMMARY_USAGE
            return ""  # the CLI: "Error during compaction: summarization produced empty response"
        return respond(request)

    model_server.responder = empty_summary_then_no_cli
    failed = runtime.run_turn(turn_request("and now?", turn_id=3))
    assert failed.error_kind == "internal" and failed.retryable, failed
    assert failed.cost_usd == pytest.approx(SUMMARY_CALLS * one_call, rel=0.01)  # the summary's

    model_server.responder = respond
    fresh_container()
    calls = len(model_server.model_calls)
    retried = make_runtime(env=small).run_turn(turn_request("and now?", turn_id=3))

    assert retried.ok and retried.session_id == session and retried.text.endswith("last=and now?"), retried
    turn = [call.body for call in model_server.model_calls[calls:]]
    assert len(turn) == 1 and not is_summary_request(turn[0])  # no second summary
    sent = json.dumps(turn[0]["messages"])
    assert sent.count("and now?") == 1 and "lorem ipsum lorem ipsum" in sent  # as it was
    assert "/compact" not in sent and "Error during compaction" not in sent
    assert not retried.summarised
    assert retried.cost_usd == pytest.approx(one_call, rel=0.01)
    registry = SessionRegistry(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    record = registry.get_session(SessionKey.parse(KEY))
    assert record is not None  # /cost: the two long turns, one summary, the retry's answer
    assert record.cost_usd == pytest.approx((2 + SUMMARY_CALLS + 1) * one_call, rel=0.01)

    calls = len(model_server.model_calls)
    later = make_runtime(env=small).run_turn(turn_request("still there?", turn_id=4))
    assert later.ok and later.summarised and later.text.endswith("last=still there?"), later
    assert is_summary_request(model_server.model_calls[calls].body)  # the next message tries again


def test_the_compactions_cli_starts_no_mcp_server_and_the_message_has_them_all(
    make_runtime, model_server, turn_request, fresh_container, tmp_path: Path, monkeypatch
) -> None:
    """/compact uses no tool, yet its CLI run started every server of mcp.json: one that failed
    to start there (here an HTTP server down for a moment) was left out of the message's own
    run for 300 s, and the agent could not use it though it was back."""
    config = claude_config_without_approvals(tmp_path)
    with HttpMcpServer() as vault:
        mcp = json.loads((config / "mcp.json").read_text())
        mcp["mcpServers"]["vault"] = {"type": "http", "url": vault.url}
        (config / "mcp.json").write_text(json.dumps(mcp))
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
        with_vault = {"CLAUDE_CONFIG_PATH": str(config)}
        _, _, memory, _ = a_long_uncompacted_chat(
            functools.partial(make_runtime, env=with_vault), turn_request
        )
        respond = model_server.responder
        asked_at_compaction: list[int] = []

        def look_it_up(request: dict[str, Any]) -> Any:
            if is_summary_request(request):
                asked_at_compaction.append(len(vault.requests))
                vault.broken = False  # back before the message's run starts
                return respond(request)
            results = tool_results(request)
            if results:
                return f"looked up: {results[-1]}"
            if last_user_text(request).endswith("look it up"):
                return [ToolCall(name="mcp__vault__lookup", input={})]
            return respond(request)

        model_server.responder = look_it_up
        vault.broken = True  # down as the turn starts
        asked_before = len(vault.requests)
        fresh_container()
        small = {**with_vault, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
        answer = make_runtime(env=small).run_turn(turn_request("look it up", turn_id=3))

    assert answer.ok and answer.summarised, answer
    assert LOOKUP_ANSWER in answer.text, answer.text
    assert asked_at_compaction == [asked_before]  # the compaction's CLI never reached the server
    told = json.dumps(model_server.model_calls[-1].body["system"])
    assert "vault" not in told  # the agent is not told it lacks it


@pytest.mark.parametrize("then", ["its_retry", "the_next_message"])
def test_a_failed_message_after_a_turn_stopped_at_its_compaction_ahead_is_not_marked_summarised_again(
    aws, make_runtime, model_server, turn_request, fresh_container, then
) -> None:
    """The turn stopped right after its summary was recorded as the one under it; the next
    message's run failed after its prompt was written (not recorded). Its retry, or the message
    after it, resumes after that summary as well: it was marked summarised again, and /status
    showed its later time as the last summary."""
    session, _, memory, _ = a_long_uncompacted_chat(make_runtime, turn_request)
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
    live = LiveTurns(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    registry = SessionRegistry(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    fresh_container()
    stopped = _ended_at_its_summary(make_runtime, model_server, live, turn_request, small)
    assert stopped.ok and stopped.stopped and stopped.summarised, stopped
    record = registry.get_session(SessionKey.parse(KEY))
    assert record is not None and record.summarised_at is not None
    summarised_at = record.summarised_at

    model_server.inject(ModelFault(status=500))  # the message's call, its prompt written
    failed = make_runtime(env=small).run_turn(turn_request("still there?", turn_id=4))
    assert failed.error_kind == "model_error" and failed.retryable, failed

    calls = len(model_server.model_calls)
    request = (
        turn_request("still there?", turn_id=4) if then == "its_retry" else turn_request("hello?", turn_id=5)
    )
    later = make_runtime(env=small).run_turn(request)

    assert later.ok and later.session_id == session, later
    sent = [call.body for call in model_server.model_calls[calls:]]
    assert len(sent) == 1 and not is_summary_request(sent[0])  # compacted already
    assert "remember a long text of lorem ipsum" in json.dumps(sent[0]["messages"])
    assert not later.summarised  # the stopped turn's answer is the one under the summary
    record = registry.get_session(SessionKey.parse(KEY))
    assert record is not None and record.summarised_at == summarised_at  # /status: the stopped turn's


@pytest.mark.parametrize("ended", ["stopped", "at_its_cap", "stopped_in_its_message"])
def test_a_failed_message_after_a_turn_ended_after_its_compaction_ahead_pays_no_second_summary(
    aws, make_runtime, model_server, turn_request, fresh_container, ended
) -> None:
    """The turn ended after its summary, which it paid (the user stopped it before or while its
    message ran, or the summary cost its whole cap); the next message's only model call failed
    (nothing to pay). The ended turn left the SDK session's running total where it was before
    the summary, and the CLI's own total counts it: that message was charged the whole summary
    again, in /cost and in the budgets."""
    _, _, memory, one_call = a_long_uncompacted_chat(make_runtime, turn_request)
    small = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}
    key = SessionKey.parse(KEY)
    live = LiveTurns(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    registry = SessionRegistry(dynamodb=aws.client("dynamodb"), table=aws.resources.table)
    fresh_container()
    if ended == "stopped_in_its_message":
        first = _stopped_in_its_message(make_runtime(env=small), live, turn_request, 3)
        assert first.stopped and first.summarised, first
    else:
        stop = ended == "stopped"
        max_cost = None if stop else (SUMMARY_CALLS / 4) * one_call
        first = _ended_at_its_summary(
            make_runtime, model_server, live, turn_request, small, stop=stop, max_cost_usd=max_cost
        )
        assert first.stopped if ended == "stopped" else first.error_reason == "max_budget", first
        assert first.cost_usd == pytest.approx(SUMMARY_CALLS * one_call, rel=0.01)
    record = registry.get_session(key)
    assert record is not None
    paid = record.cost_usd

    model_server.inject(ModelFault(status=500))
    failed = make_runtime(env=small).run_turn(turn_request("still there?", turn_id=4))

    assert failed.error_kind == "model_error" and failed.retryable, failed
    # At most a call the stopped message completed is counted again, never the summary.
    assert failed.cost_usd <= one_call * 1.01, failed
    record = registry.get_session(key)
    assert record is not None and record.cost_usd == pytest.approx(paid + failed.cost_usd, abs=1e-9)
