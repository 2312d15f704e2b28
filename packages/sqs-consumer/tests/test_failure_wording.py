"""The consumer words every failure the user reads, from the runtime's error kind and reason."""

from __future__ import annotations

from typing import get_args

import msgspec
import pytest
from session_core import TURN_VERSION, ErrorKind, ErrorReason, TurnResult
from sqs_consumer import FAILURE_WORDING, failure_text


def failed(kind: ErrorKind, reason: ErrorReason | None = None) -> TurnResult:
    return TurnResult(
        version=TURN_VERSION, session_key="default/1/0", turn_id=1, error_kind=kind, error_reason=reason
    )


@pytest.mark.parametrize(
    ("kind", "reason", "words"),
    [
        ("busy", None, "still working on your previous message"),
        ("model_error", None, "did not answer this time"),
        ("internal", None, "went wrong on my side"),
        ("bad_request", None, "could not be processed"),
        ("model_error", "timeout", "took longer than I can spend"),
        ("model_error", "max_turns", "too many steps"),
        ("model_error", "max_budget", "cost more than one message may spend"),
        ("bad_request", "attachment", "could not open the file you sent"),
        ("bad_request", "history_too_large", "Send /new to start a fresh one"),
        ("bad_request", "request_too_large", "send a smaller file or fewer pages"),
        ("model_error", "disk_limit", "grew past the disk space one chat may use"),
    ],
)
def test_the_reason_words_the_failure_before_the_kind(
    kind: ErrorKind, reason: ErrorReason | None, words: str
) -> None:
    text = failure_text(failed(kind, reason))
    assert text is not None and words in text


def test_a_misconfigured_deployment_gets_the_general_notice_and_success_has_no_wording() -> None:
    assert failure_text(failed("config")) is None  # the caller sends FAILED_NOTICE
    assert (
        failure_text(TurnResult(version=TURN_VERSION, session_key="default/1/0", turn_id=1, text="hi"))
        is None
    )


def test_a_timeout_of_the_callers_deadline_tells_of_a_wait_only_after_one() -> None:
    """The runtime's ``timed_out_by`` "caller" says whose deadline came first, not why: the
    consumer's time may simply be set shorter than the runtime's, with nothing waited for."""
    cut = msgspec.structs.replace(failed("model_error", "timeout"), timed_out_by="caller")
    no_wait = failure_text(cut)
    assert no_wait is not None and no_wait.startswith("This took longer than I can spend"), no_wait
    waited = failure_text(cut, after_a_wait=True)
    assert waited is not None and waited.startswith("I had to wait before I could start"), waited
    own_time = msgspec.structs.replace(cut, timed_out_by="runtime")
    assert failure_text(own_time, after_a_wait=True) == no_wait  # the wait did not cut it


def test_every_reason_has_its_words() -> None:
    assert set(get_args(ErrorReason)) <= set(FAILURE_WORDING)
    assert set(get_args(ErrorKind)) - {"config"} <= set(FAILURE_WORDING)


def test_files_not_sent_are_named_with_why_in_one_line_that_renders_as_written() -> None:
    from session_core import UnsentFile, UnsentReason
    from sqs_consumer import UNSENT_WORDING, render_reply, unsent_files_notice

    assert set(UNSENT_WORDING) == set(get_args(UnsentReason))
    assert unsent_files_notice([]) == ""
    one = [UnsentFile(file_name="report.zip", reason="too_large")]
    assert render_reply(unsent_files_notice(one)) == [
        "(report.zip was not sent: it is larger than 50 MB, the most a bot can send)"
    ]
    many = [UnsentFile(file_name=f"f_{i}*.txt", reason="too_many") for i in range(5)]
    many.append(UnsentFile(file_name="link", reason="not_a_file"))
    many += [UnsentFile(file_name=name, reason="failed") for name in ("a b.pdf", "<c>.txt")]
    [line] = render_reply(unsent_files_notice(many))
    assert line == (
        "(f_0*.txt, f_1*.txt, f_2*.txt and 2 more were not sent: only 10 files can be sent with one "
        "answer; link was not sent: it is not a regular file; a b.pdf and &lt;c&gt;.txt were not "
        "sent: something went wrong while preparing them)"
    )
    # 150 files: ten sent, the next 90 named among the entries looked at, 50 more only counted
    named = [UnsentFile(file_name=f"part-{i}.txt", reason="too_many") for i in range(10, 100)]
    [counted] = render_reply(unsent_files_notice(named, more_too_many=50))
    assert counted == (
        "(part-10.txt, part-11.txt, part-12.txt and 137 more were not sent: only 10 files can be "
        "sent with one answer)"
    )
    [only_counted] = render_reply(unsent_files_notice([], more_too_many=1))
    assert only_counted == "(1 file was not sent: only 10 files can be sent with one answer)"
