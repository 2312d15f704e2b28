"""A consumer and runtime one release apart: a result carrying a value of a known enumeration
that this release does not know yet (a new error reason, say) still decodes, the value read
as its stated fallback and logged; anything else malformed is refused as before."""

from __future__ import annotations

import json
from typing import Any

import pytest
from session_core import TURN_VERSION, MessageDecodeError, UnsentFile, Usage, decode_turn_result
from structlog.testing import capture_logs

FUTURE = "some_future_reason"


def newer_result(**fields: Any) -> bytes:
    """A result as a runtime one release newer writes it."""
    return json.dumps(
        {
            "version": TURN_VERSION,
            "session_key": "default/5/0",
            "turn_id": 7,
            "text": "half an answer",
            "session_id": "s-1",
            "usage": {"input_tokens": 10, "output_tokens": 3},
            "retryable": True,
            **fields,
        }
    ).encode()


def test_unknown_reasons_read_as_their_fallbacks_and_keep_the_rest_of_the_result() -> None:
    data = newer_result(
        stopped=True,
        stop_reason=FUTURE,
        files_not_sent=[
            {"file_name": "a.txt", "reason": "too_large"},
            {"file_name": "b.bin", "reason": FUTURE},
        ],
    )

    with capture_logs() as logs:
        result = decode_turn_result(data)

    assert result.stopped and result.stop_reason is None  # a stop for no reason it can name
    assert result.files_not_sent == (
        UnsentFile(file_name="a.txt", reason="too_large"),
        UnsentFile(file_name="b.bin", reason="failed"),
    )
    assert (result.text, result.session_id, result.retryable) == ("half an answer", "s-1", True)
    assert result.usage == Usage(input_tokens=10, output_tokens=3)
    assert [(e["event"], e["log_level"], e["field"], e["value"]) for e in logs] == [
        ("result.unknown_value", "warning", "stop_reason", FUTURE),
        ("result.unknown_value", "warning", "files_not_sent.reason", FUTURE),
    ]


def test_an_unknown_error_reason_keeps_its_kind_and_an_unknown_kind_is_an_internal_failure() -> None:
    with capture_logs() as logs:
        reason = decode_turn_result(newer_result(error_kind="model_error", error_reason=FUTURE))
        kind = decode_turn_result(newer_result(error_kind="some_future_kind", error_reason="timeout"))

    assert (reason.error_kind, reason.error_reason, reason.ok) == ("model_error", None, False)
    assert (kind.error_kind, kind.error_reason, kind.ok) == ("internal", "timeout", False)
    assert [(e["field"], e["value"]) for e in logs] == [
        ("error_reason", FUTURE),
        ("error_kind", "some_future_kind"),
    ]


def test_a_timeout_charged_to_a_newer_kind_of_deadline_reads_as_the_runtimes() -> None:
    # A runtime one release newer may name whose time ran out in a way this consumer does not
    # know: the turn's text and spend are kept, its timeout told as the runtime's own.
    with capture_logs() as logs:
        result = decode_turn_result(
            newer_result(error_kind="model_error", error_reason="timeout", timed_out_by=FUTURE)
        )

    assert (result.error_reason, result.timed_out_by, result.text) == ("timeout", None, "half an answer")
    assert [(e["field"], e["value"]) for e in logs] == [("timed_out_by", FUTURE)]


def test_an_approval_answered_in_a_newer_way_reads_as_answered_by_its_buttons() -> None:
    outcome = {
        "approval_id": "a1",
        "choice": "deny",
        "decided_by": "ada",
        "tool_name": "Bash",
        "summary": "ls",
        "answered_by": FUTURE,
    }
    with capture_logs() as logs:
        result = decode_turn_result(newer_result(approval_outcome=outcome))
    assert result.approval_outcome is not None
    assert (result.approval_outcome.choice, result.approval_outcome.answered_by) == ("deny", "button")
    assert [(e["field"], e["value"]) for e in logs] == [("approval_outcome.answered_by", FUTURE)]


def test_a_version_1_record_with_an_unknown_reason_decodes_too() -> None:
    stored = (
        b'{"version": 1, "session_key": "default/5/0", "update_id": 7, "text": "hi",'
        b' "error_kind": "bad_request", "error_reason": "some_future_reason"}'
    )
    result = decode_turn_result(stored)
    assert (result.turn_id, result.error_kind, result.error_reason) == (7, "bad_request", None)


@pytest.mark.parametrize(
    "data",
    [
        newer_result(error_reason=7),  # not a string: malformed, not newer
        newer_result(error_reason=FUTURE, turn_id="seven"),  # a newer value does not excuse the rest
        newer_result(stop_reason=FUTURE, session_key=None),
        newer_result(files_not_sent=[{"reason": FUTURE}]),  # the file's name is missing
        newer_result(usage={"input_tokens": "many"}),
        b'{"version": 2, "session_key": "default/5/0", "turn_id": 7, "error_reason": "some_future_reason"',
    ],
)
def test_a_malformed_result_is_still_refused(data: bytes) -> None:
    with capture_logs() as logs, pytest.raises(MessageDecodeError) as info:
        decode_turn_result(data)
    assert info.value.model == "TurnResult"
    assert logs == []  # nothing read as a fallback from a result that was refused
