"""A long chat's history fills the model's context: the CLI compacts it (a summary replaces
the conversation so far) in the middle of a turn, and the chat goes on across containers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_runtime import workspace_paths
from local_stack import (
    CallUsage,
    ModelFault,
    ModelServer,
    ToolCall,
    is_summary_request,
    last_user_text,
    tool_results,
)
from session_core import SessionKey, SessionRegistry

from .conftest import LOSSES_TOLD, answer_lost, flow_responder

pytestmark = pytest.mark.slow

# Every call reports a context this full: the CLI compacts before each turn's answer.
FULL_CONTEXT = CallUsage(input_tokens=990_000, output_tokens=10)
ROOMY_CONTEXT = CallUsage(input_tokens=20_000, output_tokens=10)
SUMMARY = "<summary>The user's favourite colour is teal.</summary>"
# What the CLI is told to summarize in the middle of a turn: its prompt and tool results too.
WORK_SUMMARY = "<summary>The user asked to run echo hi; it printed hi.</summary>"


class CompactingModel:
    """Summarizes when the CLI compacts; a message ending in "bash: CMD" runs CMD (after a
    compaction the CLI sends it after the summary, in one user message). After a summary with
    ``fail_after_summary`` set (of a turn's tool work, with ``after_work``), the next calls
    fail with a 500 (the model breaking down right after the compaction). With ``fail_after_tool``
    set, the call after the next tool call fails with a 529, and no call after that tool call
    reports a full context (the summary made room). With ``command_after_summary``, the call
    after a summary of a turn's work runs that command, and the call after it fails (529)."""

    def __init__(self) -> None:
        self.server: ModelServer | None = None
        self.fail_after_summary = False
        self.after_work = False
        self.fail_after_tool = False
        self.command_after_summary: str | None = None
        self._work_summarised = False

    def __call__(self, request: dict[str, Any]) -> Any:
        if not is_summary_request(request) and self._work_summarised and self.command_after_summary:
            self._work_summarised = False
            self.fail_after_tool = True
            command, self.command_after_summary = self.command_after_summary, None
            return self._run_failing_after(command)
        if not is_summary_request(request):
            command = last_user_text(request).splitlines()[-1]
            if command.startswith("bash:") and not tool_results(request):
                return self._run_failing_after(command[5:].strip())
            return flow_responder(request)
        work = "tool_result" in json.dumps(request["messages"])
        self._work_summarised = work
        if self.fail_after_summary and work == self.after_work and self.server is not None:
            self.fail_after_summary = False
            self.server.inject(ModelFault(status=500))
        return WORK_SUMMARY if work else SUMMARY

    def _run_failing_after(self, command: str) -> list[ToolCall]:
        if self.fail_after_tool and self.server is not None:
            self.fail_after_tool = False
            self.server.usage = ROOMY_CONTEXT
            self.server.inject(ModelFault(status=529, error_type="overloaded_error"))
        return [ToolCall(name="Bash", input={"command": command, "description": "t"})]


@pytest.fixture
def model() -> CompactingModel:
    return CompactingModel()


@pytest.fixture
def model_server(model: CompactingModel) -> Iterator[ModelServer]:
    with ModelServer(model, usage=FULL_CONTEXT) as server:
        model.server = server
        yield server


def test_a_turn_the_cli_compacted_the_history_in_is_recorded_as_summarised_for_status(
    aws, make_runtime, model, model_server, turn_request
) -> None:
    """The CLI summarised the conversation (the agent keeps only the summary from then on) and
    nobody could tell: the answer and the chat's record say so, and when, so that /status tells
    the user why the agent forgot details."""
    key = SessionKey.parse("default/1001/0")
    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)
    # The first turn reports a full context: the CLI compacts before the next one's answer.
    first = make_runtime().run_turn(turn_request("my favourite colour is teal", turn_id=1))
    assert first.ok and not first.summarised, first
    before = registry.get_session(key)
    assert before is not None and before.summarised_at is None

    compacted = make_runtime().run_turn(turn_request("what is my favourite colour?", turn_id=2))

    assert any(is_summary_request(call.body) for call in model_server.model_calls)
    assert compacted.ok and compacted.summarised, compacted
    after = registry.get_session(key)
    assert after is not None and after.summarised_at is not None
    assert after.summarised_at >= before.updated_at


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
    compactions = [call.body for call in model_server.model_calls if is_summary_request(call.body)]
    # Compacted before the turn's first call: summarized without its prompt, which the CLI
    # sends after the summary as it is.
    assert "what is my favourite colour?" not in json.dumps(compactions[-1])

    fresh_container()
    retried = make_runtime().run_turn(turn_request("what is my favourite colour?", turn_id=2))
    assert retried.ok, retried
    assert retried.session_id == first.session_id
    sent = json.dumps(model_server.model_calls[-1].body["messages"])
    assert "favourite colour is teal." in sent  # the summary
    assert sent.count("what is my favourite colour?") == 1  # the failed attempt left out
    assert "same message again" not in sent  # nothing to tell: the summary is of before it
    fresh_container()
    later = make_runtime().run_turn(turn_request("thanks", turn_id=3))
    assert later.ok and later.session_id == first.session_id, later


def test_a_turn_retried_after_the_cli_summarized_its_own_work_is_said_to_be_the_same_message(
    make_runtime, model, model_server, turn_request, fresh_container
) -> None:
    """Compacted in the middle of a turn (after a tool ran), the summary covers the turn's prompt
    and work: its retry resumes at that summary and sends the prompt again, which the agent
    would take for the user asking once more; it is told the message is the one the summary
    ends with, retried."""
    assert make_runtime().run_turn(turn_request("my favourite colour is teal", turn_id=1)).ok
    model.fail_after_summary = model.after_work = True

    failed = make_runtime().run_turn(turn_request("bash: echo hi", turn_id=2))
    assert failed.error_kind == "model_error" and failed.retryable, failed
    summarized = [call.body for call in model_server.model_calls if is_summary_request(call.body)][-1]
    assert "bash: echo hi" in json.dumps(summarized)  # the summary was written from the prompt

    _retried_from_the_summary_as_the_same_message(make_runtime, model_server, turn_request, fresh_container)


def test_a_second_retry_after_the_cli_summarized_its_own_work_is_still_said_to_be_the_same_message(
    make_runtime, model, model_server, turn_request, fresh_container
) -> None:
    """The first retry (told the message is the one the summary covers) failed too: the next
    resumes at the same summary, and was sent the message bare, as the user asking once more."""
    assert make_runtime().run_turn(turn_request("my favourite colour is teal", turn_id=1)).ok
    model.fail_after_summary = model.after_work = True
    failed = make_runtime().run_turn(turn_request("bash: echo hi", turn_id=2))
    assert failed.error_kind == "model_error" and failed.retryable, failed

    fresh_container()
    model_server.inject(ModelFault(status=500))
    failed_again = make_runtime().run_turn(turn_request("bash: echo hi", turn_id=2))
    assert failed_again.error_kind == "model_error" and failed_again.retryable, failed_again

    _retried_from_the_summary_as_the_same_message(make_runtime, model_server, turn_request, fresh_container)


def test_a_turn_retried_after_its_tool_ran_past_a_compaction_does_not_run_the_tool_again(
    make_runtime, model, model_server, turn_request, sessions_root
) -> None:
    """A long chat's turn compacts before its first call, the agent's tool runs, the call after
    it fails (529): the retry resumed at the summary and ran the tool again."""
    assert make_runtime().run_turn(turn_request("my favourite colour is teal", turn_id=1)).ok
    model.fail_after_tool = True
    append = "bash: echo appended >> ledger.txt"

    failed = make_runtime().run_turn(turn_request(append, turn_id=2))
    assert failed.error_kind == "model_error" and failed.retryable, failed
    retried = make_runtime().run_turn(turn_request(append, turn_id=2))

    assert retried.ok, retried
    ledger = Path(workspace_paths(sessions_root, SessionKey.parse("default/1001/0")).cwd) / "ledger.txt"
    assert ledger.read_text() == "appended\n"
    sent = json.dumps(model_server.model_calls[-1].body["messages"])
    assert "favourite colour is teal." in sent  # the summary
    assert "They already ran and must not be repeated" in sent


def test_the_next_message_after_a_turn_that_failed_past_a_summary_of_its_work_is_told_what_ran(
    make_runtime, model, model_server, turn_request, sessions_root
) -> None:
    """Compacted in the middle of a turn that then failed for good: the next message resumes at
    the summary of that turn's work, which was not left out as the note said, and the call made
    before the summary went unnamed (with none after it, nothing was said at all)."""
    assert make_runtime().run_turn(turn_request("my favourite colour is teal", turn_id=1)).ok
    model.command_after_summary = "echo second >> ledger.txt"
    failed = make_runtime().run_turn(turn_request("bash: echo first >> ledger.txt", turn_id=2))
    assert failed.error_kind == "model_error" and failed.tools_ran, failed

    answered = make_runtime().run_turn(turn_request("did it work?", turn_id=3))

    assert answered.ok, answered
    # The CLI sends the summary and the message in one user message.
    note, message = last_user_text(model_server.model_calls[-1].body).split("\n\n")[-2:]
    assert message == "did it work?"
    assert "never reached the user" in note and "the summary above" in note
    assert "left out above" not in note
    assert '"echo first >> ledger.txt"' in note and '"echo second >> ledger.txt"' in note
    ledger = Path(workspace_paths(sessions_root, SessionKey.parse("default/1001/0")).cwd) / "ledger.txt"
    assert ledger.read_text() == "first\nsecond\n"


def test_the_next_message_after_a_turn_that_failed_past_a_summary_is_recorded_as_summarised(
    aws, make_runtime, model, model_server, turn_request
) -> None:
    """The CLI compacted the history in a turn that then failed for good (not recorded): the
    next message resumes at that summary, the agent keeping only it, yet its answer was not
    marked summarised and /status said "no (I still read all of this conversation)"."""
    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)
    assert make_runtime().run_turn(turn_request("my favourite colour is teal", turn_id=1)).ok
    model.command_after_summary = "echo second >> ledger.txt"
    failed = make_runtime().run_turn(turn_request("bash: echo first >> ledger.txt", turn_id=2))
    assert failed.error_kind == "model_error" and failed.tools_ran, failed
    compactions = sum(is_summary_request(call.body) for call in model_server.model_calls)

    answered = make_runtime().run_turn(turn_request("did it work?", turn_id=3))

    assert answered.ok, answered
    assert sum(is_summary_request(call.body) for call in model_server.model_calls) == compactions  # none now
    assert answered.summarised, answered
    record = registry.get_session(SessionKey.parse("default/1001/0"))
    assert record is not None and record.summarised_at is not None


def _retried_from_the_summary_as_the_same_message(
    make_runtime: Any, model_server: Any, turn_request: Any, fresh_container: Any
) -> None:
    """Retried in a new container, turn 2 resumes at the summary of the first attempt's work
    and is sent once, told it is the message the summary covers."""
    calls_before = len(model_server.model_calls)
    fresh_container()
    retried = make_runtime().run_turn(turn_request("bash: echo hi", turn_id=2))
    assert retried.ok, retried
    sent = json.dumps(model_server.model_calls[calls_before].body["messages"])
    assert "it printed hi." in sent
    assert "same message again, not a new one" in sent
    assert sent.count("bash: echo hi") == 1


def test_a_retry_resumed_past_a_summary_is_not_told_again_what_the_last_answer_lost(
    make_runtime, model, model_server, turn_request, aws
) -> None:
    """Compacted before its first call, the failed attempt's prompt (the losses note above the
    message) went after the summary as it was, and its tool ran; the retry resumes after that
    tool, the note kept above: told once more, the agent read the losses twice."""
    assert make_runtime().run_turn(turn_request("my favourite colour is teal", turn_id=1)).ok
    answer_lost(aws, "default/1001/0", 1)
    model.fail_after_tool = True
    append = "bash: echo appended >> ledger.txt"
    failed = make_runtime().run_turn(turn_request(append, turn_id=2))
    assert failed.error_kind == "model_error" and failed.retryable, failed

    retried = make_runtime().run_turn(turn_request(append, turn_id=2))

    assert retried.ok, retried
    sent = json.dumps(model_server.model_calls[-1].body["messages"])
    assert "favourite colour is teal." in sent  # the summary
    assert sent.count(LOSSES_TOLD) == 1 and sent.count("logs.zip") == 1
