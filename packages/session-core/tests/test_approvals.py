"""[I] ``Approvals`` against a real DynamoDB endpoint: one pending approval per session, decided
once by a conditional write (a second answer or a stale id raises ApprovalNotPending with the
item as it is), settled after the resumed run, cleared by /new; grants listed and revoked."""

from __future__ import annotations

import threading
from typing import Any

import msgspec
import pytest
from agentbot_testing import FakeClock
from local_stack import local_client
from session_core import (
    Approval,
    ApprovalNotPending,
    ApprovalOutcome,
    Approvals,
    SessionKey,
    grant_token,
    new_approval_id,
)

KEY = SessionKey(tenant="acme", chat_id=42, thread_id=0)
OTHER = SessionKey(tenant="acme", chat_id=42, thread_id=7)


@pytest.fixture
def approvals(aws: Any) -> Approvals:
    return Approvals(dynamodb=aws.dynamodb, table=aws.resources.table, clock=FakeClock())


def pending(approval_id: str | None = None, **fields: Any) -> Approval:
    return Approval(
        approval_id=approval_id or new_approval_id(),
        state="pending",
        tool_name="Bash",
        tool_use_id="toolu_1",
        call_fingerprint="fingerprint-of-ls",
        summary="ls",
        grant_rule="Bash(ls *)",
        sdk_session_id="s-1",
        requested_by=501,
        **fields,
    )


def test_open_keeps_one_approval_per_session_and_attach_names_its_message(approvals: Approvals) -> None:
    assert approvals.current(KEY) is None
    first, second = pending(), pending()
    approvals.open(KEY, first)
    assert approvals.current(KEY) == first
    approvals.open(KEY, second)  # a later deferred call replaces the older one
    assert approvals.current(KEY) == second
    assert approvals.current(OTHER) is None  # a topic is a session of its own
    approvals.attach_message(KEY, first.approval_id, 99)  # not the current one: nothing
    assert approvals.current(KEY).message_id is None  # type: ignore[union-attr]
    approvals.attach_message(KEY, second.approval_id, 100)
    assert approvals.current(KEY).message_id == 100  # type: ignore[union-attr]


def test_an_approval_is_decided_once(approvals: Approvals) -> None:
    approval = pending()
    approvals.open(KEY, approval)
    decided = approvals.decide(KEY, approval.approval_id, "once", decided_by="ada", decided_by_id=501)
    assert (decided.state, decided.choice, decided.decided_by, decided.decided_by_id) == (
        "decided",
        "once",
        "ada",
        501,
    )
    with pytest.raises(ApprovalNotPending) as again:
        approvals.decide(KEY, approval.approval_id, "deny", decided_by="bob")
    assert again.value.current is not None and again.value.current.choice == "once"
    assert again.value.current.decided_by == "ada"
    outcome = approvals.current(KEY).outcome()  # type: ignore[union-attr]
    assert (outcome.approval_id, outcome.choice, outcome.decided_by) == (approval.approval_id, "once", "ada")


def test_a_presser_named_a_new_message_is_still_a_button_press(approvals: Approvals) -> None:
    """What the chat says of an answer comes from how it was answered, never from the
    presser's display name, which anyone can choose."""
    pressed, written = pending(), pending()
    approvals.open(KEY, pressed)
    by_name = approvals.decide(KEY, pressed.approval_id, "once", decided_by="a new message")
    assert (by_name.answered_by, by_name.outcome().answered_by) == ("button", "button")
    approvals.open(KEY, written)
    declined = approvals.decide(
        KEY, written.approval_id, "deny", decided_by="a new message", answered_by="new_message"
    )
    assert declined.outcome().answered_by == "new_message"
    assert approvals.current(KEY).outcome().answered_by == "new_message"  # type: ignore[union-attr]


def test_an_approval_written_before_answered_by_existed_reads_as_a_button_press(
    aws: Any, approvals: Approvals
) -> None:
    approval = pending()
    approvals.open(KEY, approval)
    approvals.decide(KEY, approval.approval_id, "always", decided_by="ada")
    aws.dynamodb.update_item(  # as an older version wrote it
        TableName=aws.resources.table,
        Key={"pk": {"S": f"session|{KEY.canonical}"}, "sk": {"S": "approval"}},
        UpdateExpression="REMOVE answered_by",
    )
    old = approvals.current(KEY)
    assert old is not None and (old.choice, old.decided_by, old.answered_by) == ("always", "ada", "button")
    outcome = msgspec.json.decode(
        b'{"approval_id":"a","choice":"deny","decided_by":"ada","tool_name":"Bash","summary":"ls"}',
        type=ApprovalOutcome,
    )
    assert outcome.answered_by == "button"  # a turn result of an older runtime


def test_deciding_another_or_no_approval_raises_with_what_is_there(approvals: Approvals) -> None:
    with pytest.raises(ApprovalNotPending) as none:
        approvals.decide(KEY, "0123456789ab", "once", decided_by="ada")
    assert none.value.current is None
    approval = pending()
    approvals.open(KEY, approval)
    with pytest.raises(ApprovalNotPending) as other:
        approvals.decide(KEY, "0123456789ab", "once", decided_by="ada")
    assert other.value.current == approval
    assert approvals.current(KEY) == approval  # unchanged


def test_two_racing_answers_one_wins(aws: Any, approvals: Approvals) -> None:
    approval = pending()
    approvals.open(KEY, approval)
    racing = Approvals(
        dynamodb=local_client("dynamodb", aws.endpoints.url_for("dynamodb")), table=aws.resources.table
    )
    wins, losses = _race(racing, approval.approval_id)
    assert len(wins) == 1 and len(losses) == 5
    assert all(lost.current is not None and lost.current.decided_by == wins[0] for lost in losses)
    assert approvals.current(KEY).decided_by == wins[0]  # type: ignore[union-attr]


def _race(approvals: Approvals, approval_id: str) -> tuple[list[str], list[ApprovalNotPending]]:
    wins: list[str] = []
    losses: list[ApprovalNotPending] = []
    barrier = threading.Barrier(6)

    def press(name: str) -> None:
        barrier.wait()
        try:
            approvals.decide(KEY, approval_id, "always", decided_by=name)
            wins.append(name)
        except ApprovalNotPending as lost:
            losses.append(lost)

    threads = [threading.Thread(target=press, args=(f"user{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wins, losses


def test_settle_and_clear(approvals: Approvals) -> None:
    approval = pending()
    approvals.open(KEY, approval)
    approvals.decide(KEY, approval.approval_id, "deny", decided_by="ada")
    approvals.settle(KEY, "0123456789ab")  # another id: nothing
    assert approvals.current(KEY).state == "decided"  # type: ignore[union-attr]
    approvals.settle(KEY, approval.approval_id)
    assert approvals.current(KEY).state == "settled"  # type: ignore[union-attr]
    with pytest.raises(ApprovalNotPending):
        approvals.decide(KEY, approval.approval_id, "once", decided_by="ada")
    cleared = approvals.clear(KEY)
    assert cleared is not None and cleared.approval_id == approval.approval_id
    assert approvals.current(KEY) is None
    assert approvals.clear(KEY) is None


def test_grants_are_listed_revoked_by_token_and_survive_clear(approvals: Approvals) -> None:
    assert approvals.grants(KEY) == []
    approvals.grant(KEY, "Bash(git *)", granted_by="ada")
    approvals.grant(KEY, "Write", granted_by="bob")
    approvals.open(KEY, pending())
    approvals.clear(KEY)
    listed = {(g.rule, g.granted_by, g.token) for g in approvals.grants(KEY)}
    assert listed == {
        ("Bash(git *)", "ada", grant_token("Bash(git *)")),
        ("Write", "bob", grant_token("Write")),
    }
    assert approvals.grants(OTHER) == []
    revoked = approvals.revoke(KEY, grant_token("Write"))
    assert revoked is not None and revoked.rule == "Write"
    assert approvals.revoke(KEY, grant_token("Write")) is None
    assert [g.rule for g in approvals.grants(KEY)] == ["Bash(git *)"]


def test_an_approval_a_newer_release_answered_in_a_way_unknown_here_reads_as_answered_by_its_buttons(
    aws: Any, approvals: Approvals
) -> None:
    """A runtime or consumer one release behind the producer that recorded the answer: its
    choice and who decided still count; the new way of answering reads as a press, logged."""
    from structlog.testing import capture_logs

    approval = pending()
    approvals.open(KEY, approval)
    approvals.decide(KEY, approval.approval_id, "deny", decided_by="ada", answered_by="stop")
    aws.dynamodb.update_item(
        TableName=aws.resources.table,
        Key={"pk": {"S": f"session|{KEY.canonical}"}, "sk": {"S": "approval"}},
        UpdateExpression="SET answered_by = :newer",
        ExpressionAttributeValues={":newer": {"S": "some_future_value"}},
    )

    with capture_logs() as logs:
        current = approvals.current(KEY)

    assert current is not None
    assert (current.state, current.choice, current.decided_by, current.answered_by) == (
        "decided",
        "deny",
        "ada",
        "button",
    )
    assert [(e["event"], e["field"], e["value"]) for e in logs] == [
        ("approval.unknown_value", "answered_by", "some_future_value")
    ]
