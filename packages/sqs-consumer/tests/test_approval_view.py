"""[I] The approval message as the chat shows it: once answered, it says what was decided and
by whom; whatever the call, Telegram accepts it."""

from __future__ import annotations

from session_core import ApprovalOutcome
from sqs_consumer import html_to_plain
from sqs_consumer._approval_view import approval_outcome_html


def outcome(**fields: object) -> ApprovalOutcome:
    return ApprovalOutcome(
        **{"approval_id": "0123456789ab", "tool_name": "Bash", "summary": "rm -rf build", **fields}  # type: ignore[arg-type]
    )


def test_an_allowed_call_reads_allowed_whatever_the_presser_is_named() -> None:
    allowed = outcome(choice="once", decided_by="a new message")

    shown = html_to_plain(approval_outcome_html(allowed))

    assert shown == "✅ Allowed once by a new message: Bash rm -rf build"


def test_a_call_declined_by_a_new_message_says_so() -> None:
    declined = outcome(choice="deny", decided_by="a new message", answered_by="new_message")
    denied = outcome(choice="deny", decided_by="ada")

    assert html_to_plain(approval_outcome_html(declined)) == (
        "❌ Declined: you sent a new message: Bash rm -rf build"
    )
    assert html_to_plain(approval_outcome_html(denied)) == "❌ Denied by ada: Bash rm -rf build"
