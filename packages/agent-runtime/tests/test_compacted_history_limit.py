"""A chat the CLI has compacted goes on past the size an uncompacted history is refused at:
the CLI loads only what follows its last compaction, so only that grows its memory (real
CLI, moto storage, the runtime's memory set low enough that the history's size matters)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import pytest
from agent_runtime import transcript_project
from agent_runtime._history_limit import (
    BASE_MIB,
    CLI_MIB_PER_LOADED_MB,
    HEADROOM,
    MIB_PER_HISTORY_MB,
    RUNTIME_MIB_PER_MB,
)
from agent_runtime._loaded_history import bytes_the_cli_loads
from local_stack import CallUsage, ModelServer, is_summary_request
from session_core import SessionKey

from .conftest import flow_responder

pytestmark = pytest.mark.slow

FULL_CONTEXT = CallUsage(input_tokens=990_000, output_tokens=10)  # the CLI compacts next turn
ROOMY_CONTEXT = CallUsage(input_tokens=20_000, output_tokens=10)
# ~0.72 MB of history: this prompt and the model's echo of it.
LONG_PROMPT = "remember this: " + "lorem ipsum " * 30_000
KEY = "default/1001/0"


def stored_and_loaded_mb(runtime: Any, session_id: str) -> tuple[float, float]:
    project = transcript_project(SessionKey.parse(KEY))
    stored = asyncio.run(runtime.store.load_stored({"project_key": project, "session_id": session_id}))
    assert stored is not None
    return stored.size / 1_000_000, bytes_the_cli_loads(stored) / 1_000_000


def from_the_boundary_mb(runtime: Any, session_id: str) -> float:
    """The bytes from the transcript's last compact boundary to its end, in MB."""
    project = transcript_project(SessionKey.parse(KEY))
    stored = asyncio.run(runtime.store.load_stored({"project_key": project, "session_id": session_id}))
    assert stored is not None
    _, from_line = next(stored.tails_containing(b'"subtype":"compact_boundary"'))
    return from_line / 1_000_000


def memory_for_a_limit_at(limit_mb: float, loaded_mb: float) -> int:
    """The function memory (MB) whose limit for this compacted history is about ``limit_mb``."""
    return math.ceil(
        (BASE_MIB + RUNTIME_MIB_PER_MB * limit_mb + CLI_MIB_PER_LOADED_MB * loaded_mb) / (1 - HEADROOM)
    )


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    def respond(request: dict[str, Any]) -> Any:
        if is_summary_request(request):
            return "<summary>The user asked to remember a long text of lorem ipsum.</summary>"
        return flow_responder(request)

    with ModelServer(respond, usage=ROOMY_CONTEXT) as server:
        yield server


def a_compacted_chat(make_runtime: Any, model_server: ModelServer, turn_request: Any) -> str:
    """A long first message, its context full, so the CLI compacts it in the second turn: the
    session."""
    model_server.usage = FULL_CONTEXT
    first = make_runtime().run_turn(turn_request(LONG_PROMPT, turn_id=1))
    assert first.ok, first
    model_server.usage = ROOMY_CONTEXT
    compacted = make_runtime().run_turn(turn_request("what did I ask you to remember?", turn_id=2))
    assert compacted.ok and compacted.summarised, compacted
    return first.session_id or ""


def test_a_compacted_history_past_the_uncompacted_limit_still_answers(
    make_runtime, model_server, turn_request, fresh_container
) -> None:
    session = a_compacted_chat(make_runtime, model_server, turn_request)
    calls = len(model_server.model_calls)
    history, loaded = stored_and_loaded_mb(make_runtime(), session)
    assert loaded < history / 10  # the CLI loads the summary and what followed it
    # A memory whose limit is 10 % above the history, and far below what it needs uncompacted.
    memory = memory_for_a_limit_at(history * 1.1, loaded)
    assert (memory * (1 - HEADROOM) - BASE_MIB) / MIB_PER_HISTORY_MB < history / 2

    fresh_container()
    small = make_runtime(env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)})
    answer = small.run_turn(turn_request("and now?", turn_id=3))

    assert answer.ok and answer.text.endswith("last=and now?"), answer
    assert len(model_server.model_calls) > calls  # the model answered it
    # Past 80 % of its limit, the answer says how long the history is, and where the limit is now.
    assert answer.history is not None and not answer.history.too_large
    assert answer.history.mb == pytest.approx(history, rel=0.05)
    spare = memory * (1 - HEADROOM) - BASE_MIB
    expected_limit = (spare - CLI_MIB_PER_LOADED_MB * loaded) / RUNTIME_MIB_PER_MB
    assert answer.history.limit_mb == pytest.approx(expected_limit) and expected_limit > history


def test_the_same_history_uncompacted_is_refused(make_runtime, model_server, turn_request) -> None:
    """The control: without a compaction the CLI would load all of it, which the memory cannot."""
    first = make_runtime().run_turn(turn_request(LONG_PROMPT, turn_id=1))
    assert first.ok, first
    second = make_runtime().run_turn(turn_request(LONG_PROMPT, turn_id=2))
    assert second.ok and not second.summarised, second

    history, loaded = stored_and_loaded_mb(make_runtime(), first.session_id or "")
    assert loaded == history  # no compaction: the CLI loads it all
    small = make_runtime(
        env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_for_a_limit_at(history * 1.1, 0))}
    )
    refused = small.run_turn(turn_request("and now?", turn_id=3))

    assert refused.error_reason == "history_too_large", refused
    assert refused.history is not None and refused.history.loaded_mb == pytest.approx(history)


def test_what_a_compaction_kept_from_before_its_boundary_counts(
    make_runtime, model_server, turn_request, fresh_container
) -> None:
    """The CLI compacts at the start of the long message's turn and keeps that message as it
    is (its boundary's preserved segment), written before the boundary: it loads it and sends
    it again, so the memory it needs counts it, not only what follows the boundary."""
    model_server.usage = FULL_CONTEXT
    first = make_runtime().run_turn(turn_request("hi", turn_id=1))
    assert first.ok, first
    model_server.usage = ROOMY_CONTEXT
    kept = make_runtime().run_turn(turn_request(LONG_PROMPT, turn_id=2))
    assert kept.ok and kept.summarised, kept
    history, loaded = stored_and_loaded_mb(make_runtime(), first.session_id or "")
    # A memory that would hold the history if the CLI loaded only what follows its boundary.
    memory = memory_for_a_limit_at(
        history * 1.1, from_the_boundary_mb(make_runtime(), first.session_id or "")
    )
    calls = len(model_server.model_calls)

    fresh_container()
    small = make_runtime(env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)})
    refused = small.run_turn(turn_request("and now?", turn_id=3))

    assert refused.error_reason == "history_too_large", refused
    assert len(model_server.model_calls) == calls  # refused before the model was called
    assert refused.history is not None and refused.history.loaded_mb == pytest.approx(loaded)
    # The CLI sends the kept message and the answer to it: at least that much it loads.
    assert loaded * 1_000_000 > 2 * len(LONG_PROMPT)


def test_a_compacted_chat_with_large_subagents_is_measured_by_what_the_cli_loads_of_it(
    make_runtime, model_server, turn_request, fresh_container
) -> None:
    """A compacted chat whose subagents' transcripts are large (they read photos, say): the
    runtime keeps those, the CLI loads only what follows the conversation's last compaction.
    The transcript alone was too small for the runtime to look for that compaction, so it was
    counted as loaded whole, and the chat was refused at a memory that holds it."""
    session = a_compacted_chat(make_runtime, model_server, turn_request)
    history, loaded = stored_and_loaded_mb(make_runtime(), session)
    assert loaded < history / 10
    store_key = {"project_key": transcript_project(SessionKey.parse(KEY)), "session_id": session}
    photos = [{"type": "user", "uuid": f"s{n}", "isSidechain": True, "text": LONG_PROMPT} for n in range(8)]
    asyncio.run(make_runtime().store.append({**store_key, "subpath": "subagents/agent-a1"}, photos))
    subagent = 8 * len(LONG_PROMPT) / 1_000_000  # ~2.5x the conversation's transcript
    # Spare memory for the transcript and its subagents with the CLI loading what follows the
    # compaction (with room), not were it to load the whole transcript; the transcript alone
    # is well inside the limit of a history never compacted.
    spare = 12.5 * history
    assert 2 * (history + subagent) + CLI_MIB_PER_LOADED_MB * loaded < 0.8 * spare
    assert 2 * (history + subagent) + CLI_MIB_PER_LOADED_MB * history > spare + 1  # + rounding
    assert history < 0.8 * spare / MIB_PER_HISTORY_MB
    memory = math.ceil((BASE_MIB + spare) / (1 - HEADROOM))
    calls = len(model_server.model_calls)

    fresh_container()
    answer = make_runtime(env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory)}).run_turn(
        turn_request("and now?", turn_id=3)
    )

    assert answer.ok and answer.text.endswith("last=and now?"), answer
    assert len(model_server.model_calls) > calls
