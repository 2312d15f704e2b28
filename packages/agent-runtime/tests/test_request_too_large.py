"""A chat whose model request grows past the API's size limit (32 MB: a 20 MB PDF the agent
reads is a ~28 MB request; scaled down here, the scripted model refusing any larger body with
the API's 413 ``request_too_large``, as the API does). The CLI meets a 413 by summarising the
conversation without the newest file and asking again; when what it must send after the
summary is still too large, the turn fails (``request_too_large``: the user's file, not the
operator's setup) and the next message leaves that turn out, so the chat goes on without /new."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from agentbot_testing import noise_pdf
from local_stack import ModelServer, ToolCall, conversation_tool_results, is_summary_request, last_user_text
from session_core import StagedAttachment
from structlog.testing import capture_logs

from .conftest import staged_file

pytestmark = pytest.mark.slow
REQUEST_LIMIT = 2_500_000
FITS_ALONE = 1_000_000  # a request carrying its read is ~1.4 MB (base64): two are over the limit
TOO_LARGE_ALONE = 2_000_000  # ~2.7 MB: over the limit with nothing else
SUMMARY = "<summary>The user had the agent read PDFs.</summary>"


def reads_the_file_named(request: dict[str, Any]) -> Any:
    """``read NAME``: the agent Reads NAME from attachments/ (after asking Bash where it works:
    Read takes an absolute path); any other message is answered plainly; a compaction summarised."""
    if is_summary_request(request):
        return SUMMARY
    words = last_user_text(request).split()
    if words[:1] != ["read"]:
        return "answered."
    results = conversation_tool_results(request)
    cwd = next((result.strip() for result in results if result.startswith("/")), None)
    if cwd is None:
        return [ToolCall(name="Bash", input={"command": "pwd", "description": "where am I"})]
    if not any(result.startswith("PDF file read") and words[1] in result for result in results):
        return [ToolCall(name="Read", input={"file_path": f"{cwd}/attachments/{words[1]}"})]
    return "I have read it."


def a_pdf(aws: Any, turn_id: int, name: str, size: int) -> tuple[StagedAttachment, ...]:
    """A scan of about ``size`` bytes (it does not compress) the user sent with turn ``turn_id``."""
    return staged_file(aws, turn_id, name, "application/pdf", noise_pdf(size, seed=turn_id))


def _size(call: Any) -> int:
    return len(json.dumps(call.body, separators=(",", ":")))


def _sent_bytes(call: Any) -> int:
    """The body's size as it came over the wire."""
    return int(next(value for name, value in call.headers.items() if name.lower() == "content-length"))


def _carries_a_document(call: Any) -> bool:
    return '"type": "document"' in json.dumps(call.body["messages"])


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    with ModelServer(reads_the_file_named, max_request_bytes=REQUEST_LIMIT) as server:
        yield server


def test_a_second_pdf_past_the_request_limit_is_answered_on_a_summary(
    make_runtime, model_server, turn_request, aws
) -> None:
    """The request carrying both PDFs is refused; the CLI summarises the conversation and goes
    on: the turn is answered (marked summarised) and so is the next message."""
    runtime = make_runtime()
    first = runtime.run_turn(
        turn_request("read one.pdf", turn_id=1, attachments=a_pdf(aws, 1, "one.pdf", FITS_ALONE))
    )
    assert first.ok and first.text == "I have read it.", first
    before = len(model_server.model_calls)

    second = runtime.run_turn(
        turn_request("read two.pdf", turn_id=2, attachments=a_pdf(aws, 2, "two.pdf", FITS_ALONE))
    )
    third = runtime.run_turn(turn_request("hello again", turn_id=3))

    refused = [call for call in model_server.model_calls[before:] if _size(call) > REQUEST_LIMIT]
    assert refused, "no request of the second read was over the limit: the test proves nothing"
    assert second.ok and second.summarised, second
    assert third.ok and third.text == "answered.", third
    assert _size(model_server.model_calls[-1]) <= REQUEST_LIMIT


def test_a_pdf_too_large_for_the_model_fails_its_turn_and_the_next_message_leaves_it_out(
    make_runtime, model_server, turn_request, aws
) -> None:
    """Even after the CLI's summary the turn must send the file again: refused, the turn
    fails as too large (not retried; the operator's log says how large), and the next message
    resumes before the file (here at the CLI's summary), so it is answered: the chat is not
    stuck until /new."""
    runtime = make_runtime()
    assert runtime.run_turn(turn_request("hello", turn_id=1)).ok

    with capture_logs() as logs:
        refused = runtime.run_turn(
            turn_request("read big.pdf", turn_id=2, attachments=a_pdf(aws, 2, "big.pdf", TOO_LARGE_ALONE))
        )
    assert not refused.ok and not refused.retryable, refused
    assert (refused.error_kind, refused.error_reason) == ("bad_request", "request_too_large")
    [line] = [e for e in logs if e["event"] == "turn.request_too_large"]
    sent = [_sent_bytes(call) for call in model_server.model_calls]
    assert line["request_bytes"] == [size for size in sent if size > REQUEST_LIMIT][-1], (line, sent)
    before = len(model_server.model_calls)

    after = runtime.run_turn(turn_request("hello again", turn_id=3))

    assert after.ok and after.text == "answered.", after
    [answered] = model_server.model_calls[before:]  # one request, not refused
    assert "hello again" in last_user_text(answered.body)
    assert _size(answered) <= REQUEST_LIMIT and not _carries_a_document(answered)
