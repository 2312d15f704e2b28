"""A long chat's history fills the model's context: the CLI compacts it (a summary replaces
the conversation so far) in the middle of a turn, and the chat goes on across containers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from local_stack import CallUsage, ModelFault, ModelServer

from .conftest import flow_responder

pytestmark = pytest.mark.slow

# Every call reports a context this full: the CLI compacts before each turn's answer.
FULL_CONTEXT = CallUsage(input_tokens=990_000, output_tokens=10)
SUMMARY = "<summary>The user's favourite colour is teal.</summary>"


def _is_compaction(request: dict[str, Any]) -> bool:
    return "Respond with TEXT ONLY" in json.dumps(request["messages"][-1])


class CompactingModel:
    """Summarizes when the CLI compacts; after a summary with ``fail_after_summary`` set, the
    next calls fail with a 500 (the model breaking down right after the compaction)."""

    def __init__(self) -> None:
        self.server: ModelServer | None = None
        self.fail_after_summary = False

    def __call__(self, request: dict[str, Any]) -> Any:
        if not _is_compaction(request):
            return flow_responder(request)
        if self.fail_after_summary and self.server is not None:
            self.fail_after_summary = False
            self.server.inject(ModelFault(status=500))
        return SUMMARY


@pytest.fixture
def model() -> CompactingModel:
    return CompactingModel()


@pytest.fixture
def model_server(model: CompactingModel) -> Iterator[ModelServer]:
    with ModelServer(model, usage=FULL_CONTEXT) as server:
        model.server = server
        yield server


def test_a_turn_that_failed_after_the_cli_compacted_the_history_is_retried_and_the_chat_goes_on(
    make_runtime, model, model_server, turn_request, fresh_container
) -> None:
    """The failed turn's prompt comes before the compaction's boundary, where the CLI no longer
    finds it: resuming there to leave the failed turn out stopped every later message of the
    chat with "No message found with message.uuid" until /new."""
    first = make_runtime().run_turn(turn_request("my favourite colour is teal", turn_id=1))
    assert first.ok, first
    model.fail_after_summary = True

    failed = make_runtime().run_turn(turn_request("what is my favourite colour?", turn_id=2))
    assert failed.error_kind == "model_error" and failed.retryable, failed
    assert any(_is_compaction(call.body) for call in model_server.model_calls)

    fresh_container()
    retried = make_runtime().run_turn(turn_request("what is my favourite colour?", turn_id=2))
    assert retried.ok, retried
    assert retried.session_id == first.session_id
    sent = json.dumps(model_server.model_calls[-1].body["messages"])
    assert "favourite colour is teal." in sent  # the summary
    assert sent.count("what is my favourite colour?") == 1  # the failed attempt left out
    fresh_container()
    later = make_runtime().run_turn(turn_request("thanks", turn_id=3))
    assert later.ok and later.session_id == first.session_id, later
