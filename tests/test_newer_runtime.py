"""A consumer one release behind its runtime (a deploy updates the runtime first; an operator
may roll the consumer back): a result with values this release does not know (a new error
reason, stop reason, unsent file's reason or error kind) is answered as the known value it
falls back to would be, and the operator sees the skew in a warning. The runtime stub answers
"newer:<what>" as a newer runtime would (agentbot_testing.telegram_stub_runtime)."""

from __future__ import annotations

from typing import Any

import pytest
from agentbot_testing.telegram_support import NEWER_VALUE, update
from sqs_consumer import FAILURE_WORDING
from structlog.testing import capture_logs

CHAT = 501


def skew_warnings(logs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["log_level"], e["field"], e["value"]) for e in logs if e["event"] == "result.unknown_value"]


@pytest.mark.parametrize(
    ("prompt", "known_kind", "field"),
    [("newer:failed", "bad_request", "error_reason"), ("newer:kind", "internal", "error_kind")],
)
def test_a_failure_for_a_newer_reason_or_kind_is_told_and_acknowledged_as_its_fallback(
    stack: Any, prompt: str, known_kind: str, field: str
) -> None:
    stack.post(update(150, text=prompt))
    with capture_logs() as logs:
        responses = stack.drain(stack.consumer())

    assert [r["batchItemFailures"] for r in responses] == [[]]  # not retried, as a bad_request
    assert [m["text"] for m in stack.replies(CHAT)] == [FAILURE_WORDING[known_kind]]
    [dead] = stack.dead_letters()
    assert dead["MessageAttributes"]["error_kind"]["StringValue"] == known_kind
    assert skew_warnings(logs) == [("warning", field, NEWER_VALUE)]


def test_an_answer_stopped_for_a_newer_reason_is_sent_as_stopped_with_the_unsent_file_named(
    stack: Any,
) -> None:
    stack.post(update(151, text="newer:stopped"))
    with capture_logs() as logs:
        responses = stack.drain(stack.consumer())

    assert [r["batchItemFailures"] for r in responses] == [[]]
    [reply] = stack.replies(CHAT)
    assert reply["text"] == (
        "Answer to: newer:stopped\n\n⏹ Stopped.\n\n"
        "(report.bin was not sent: something went wrong while preparing it)"
    )
    assert stack.dead_letters() == []
    assert skew_warnings(logs) == [
        ("warning", "stop_reason", NEWER_VALUE),
        ("warning", "files_not_sent.reason", NEWER_VALUE),
    ]
