"""A stop sent while no turn runs, against a real DynamoDB endpoint (the moto server): kept for
the next turn only while the chat's backlog count says a message waits, or a call the user
allowed waits for its turn (then declined), in one request."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from agentbot_testing import AwsFault, FakeClock, FaultProxy
from local_stack import local_client
from session_core import Approval, Approvals, ChatBacklog, LiveTurnsWithBacklog, SessionKey, Stopper

KEY = SessionKey(tenant="acme", chat_id=-100123, thread_id=7)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backlog(aws: Any) -> ChatBacklog:
    return ChatBacklog(dynamodb=aws.dynamodb, table=aws.resources.table, limit=10)


def live_turns(
    aws: Any,
    clock: FakeClock,
    backlog: ChatBacklog | None,
    dynamodb: Any = None,
    approvals: Approvals | None = None,
) -> LiveTurnsWithBacklog:
    return LiveTurnsWithBacklog(
        dynamodb=dynamodb or aws.dynamodb,
        table=aws.resources.table,
        clock=clock,
        backlog=backlog,
        approvals=approvals,
    )


def asked(approvals: Approvals, approval_id: str) -> None:
    """The session's turn ended on a Bash call that waits for the user's answer."""
    approvals.open(
        KEY,
        Approval(
            approval_id=approval_id,
            state="pending",
            tool_name="Bash",
            tool_use_id="toolu_1",
            call_fingerprint="fingerprint-of-rm",
            summary="rm -rf build",
            grant_rule="Bash(rm *)",
            sdk_session_id="s-1",
        ),
    )


def test_a_stop_is_kept_for_the_waiting_message_only_while_the_count_holds_one(
    aws: Any, clock: FakeClock, backlog: ChatBacklog
) -> None:
    live = live_turns(aws, clock, backlog)
    assert live.request_stop(KEY, update_id=10) == "nothing_running"  # nothing counted
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 11
    assert live.request_stop(KEY, update_id=12) == "stopping"
    assert live.expect(KEY, 11) and live.stop_requested(KEY, 11)  # sent before the stop
    live.end(KEY, 11)
    backlog.release(KEY.canonical, now=clock())
    assert live.request_stop(KEY, update_id=13) == "nothing_running"
    # A stop naming a turn (a draft's, a button's) is for that turn only, never kept.
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 14
    assert live.request_stop(KEY, turn_id=14, update_id=15) == "nothing_running"
    assert live.expect(KEY, 14) and not live.stop_requested(KEY, 14)


def test_who_stopped_a_turn_is_the_first_who_asked_and_named_for_that_turn_alone(
    aws: Any, clock: FakeClock, backlog: ChatBacklog
) -> None:
    """A group's stopped answer names whoever stopped it: so a stop kept while the message
    waited keeps its sender too, a later stop does not rename it, and the next turn names
    nobody."""
    live = live_turns(aws, clock, backlog)
    bob, carol = Stopper(user_id=502, name="Bob"), Stopper(user_id=503, name="Carol")
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 40
    assert live.request_stop(KEY, update_id=41, by=bob) == "stopping"  # kept for it
    assert live.expect(KEY, 40) and live.stopped_by(KEY, 40) == bob
    assert live.request_stop(KEY, turn_id=40, update_id=42, by=carol) == "stopping"
    assert live.stopped_by(KEY, 40) == bob
    live.end(KEY, 40)
    backlog.release(KEY.canonical, now=clock())
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 43
    assert live.expect(KEY, 43) and live.stopped_by(KEY, 43) is None
    assert live.request_stop(KEY, update_id=44) == "stopping"  # nobody named (none given)
    assert live.stop_requested(KEY, 43) and live.stopped_by(KEY, 43) is None


def test_of_stops_kept_while_a_message_waits_its_turn_names_the_first_sent_after_it(
    aws: Any, clock: FakeClock, backlog: ChatBacklog
) -> None:
    """As a running turn names the first who stopped it: a later stop changes nothing. A stop
    kept for a message that started no turn (its answer was being sent) stopped nothing, so
    the next turn names whoever stopped it, even once update ids start afresh."""
    live = live_turns(aws, clock, backlog)
    alice, bob, carol = (
        Stopper(user_id=500 + n, name=name) for n, name in enumerate(("Alice", "Bob", "Carol"))
    )
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 60
    assert live.request_stop(KEY, update_id=61, by=bob) == "stopping"
    assert live.request_stop(KEY, update_id=62, by=carol) == "stopping"
    assert live.expect(KEY, 60) and live.stopped_by(KEY, 60) == bob
    live.end(KEY, 60)  # its answer is being sent: the count still holds it
    assert live.request_stop(KEY, update_id=63, by=alice) == "stopping"  # for nothing
    backlog.release(KEY.canonical, now=clock())
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 64
    assert live.request_stop(KEY, update_id=65, by=carol) == "stopping"
    assert live.expect(KEY, 64) and live.stopped_by(KEY, 64) == carol
    live.end(KEY, 64)
    assert live.request_stop(KEY, update_id=7001, by=alice) == "stopping"  # for nothing
    backlog.release(KEY.canonical, now=clock())
    clock.now += 8 * 86_400  # a week without updates: Telegram numbers the next ones afresh
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 12
    assert live.request_stop(KEY, update_id=13, by=bob) == "stopping"
    assert live.expect(KEY, 12) and live.stopped_by(KEY, 12) == bob


def test_of_two_stops_for_a_waiting_message_the_first_is_named_after_a_stop_kept_for_nothing(
    aws: Any, clock: FakeClock, backlog: ChatBacklog
) -> None:
    """Alice's late /stop was kept while an answer was being sent; then Dave's message waited
    and Carol, then Bob, sent /stop: Bob was named, whose stop changed nothing."""
    live = live_turns(aws, clock, backlog)
    alice, carol, bob = (
        Stopper(user_id=600 + n, name=name) for n, name in enumerate(("Alice", "Carol", "Bob"))
    )
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 70
    assert live.expect(KEY, 70)
    live.end(KEY, 70)  # its answer is being sent: the count still holds it
    assert live.request_stop(KEY, update_id=71, by=alice) == "stopping"  # for nothing
    backlog.release(KEY.canonical, now=clock())
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # Dave's message 72
    assert live.request_stop(KEY, update_id=73, by=carol) == "stopping"
    assert live.request_stop(KEY, update_id=74, by=bob) == "stopping"
    assert live.expect(KEY, 72) and live.stopped_by(KEY, 72) == carol


def test_stops_spammed_while_a_message_waits_keep_the_live_item_small(
    aws: Any, clock: FakeClock, backlog: ChatBacklog
) -> None:
    """Each kept stop is listed, to name the first: a group sending /stop after /stop while a
    message waits must not grow the item every progress poll reads (nor past DynamoDB's 400 KB)."""
    live = live_turns(aws, clock, backlog)
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 80
    for update_id in range(81, 281):
        stopper = Stopper(user_id=update_id, name=f"member_with_a_long_name_{update_id:03}")
        assert live.request_stop(KEY, update_id=update_id, by=stopper) == "stopping"
    item = aws.dynamodb.get_item(
        TableName=aws.resources.table, Key={"pk": {"S": f"session|{KEY.canonical}"}, "sk": {"S": "live"}}
    )["Item"]
    assert len(json.dumps(item)) < 3_000
    assert live.expect(KEY, 80) and live.stopped_by(KEY, 80) == Stopper(
        user_id=81, name="member_with_a_long_name_081"
    )


def test_a_stop_the_release_before_kept_is_named_by_this_one(
    aws: Any, clock: FakeClock, backlog: ChatBacklog
) -> None:
    """The release before listed only the first kept stop, as ``stop_before_first``: a message
    that waited across the deploy still names whoever stopped it first."""
    live = live_turns(aws, clock, backlog)
    carol, bob = Stopper(user_id=701, name="Carol"), Stopper(user_id=702, name="Bob")
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 90
    assert live.request_stop(KEY, update_id=92, by=bob) == "stopping"
    key = {"pk": {"S": f"session|{KEY.canonical}"}, "sk": {"S": "live"}}
    aws.dynamodb.update_item(  # as the release before wrote Carol's earlier stop
        TableName=aws.resources.table,
        Key=key,
        UpdateExpression="SET stop_before_first = :first REMOVE stop_before_kept",
        ExpressionAttributeValues={
            ":first": {
                "M": {
                    "update_id": {"N": "91"},
                    "at": {"N": str(clock())},
                    "by": {"S": json.dumps({"user_id": 701, "name": "Carol"})},
                }
            }
        },
    )
    assert live.expect(KEY, 90) and live.stopped_by(KEY, 90) == carol
    item = aws.dynamodb.get_item(TableName=aws.resources.table, Key=key)["Item"]
    assert "stop_before_first" not in item


def test_a_stop_kept_for_nothing_never_stops_a_message_sent_after_it(
    aws: Any, clock: FakeClock, backlog: ChatBacklog
) -> None:
    # The count still holds a message whose turn just ended (its answer is being sent).
    live = live_turns(aws, clock, backlog)
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 20
    assert live.expect(KEY, 20)
    live.end(KEY, 20)
    assert live.request_stop(KEY, update_id=21) == "stopping"  # for nothing
    backlog.release(KEY.canonical, now=clock())
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 22
    assert live.expect(KEY, 22) and not live.stop_requested(KEY, 22)


def test_a_stale_count_keeps_no_stop(aws: Any, clock: FakeClock, backlog: ChatBacklog) -> None:
    # A crashed consumer never released it; the count heals once nobody touched it for long.
    live = live_turns(aws, clock, backlog)
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"
    clock.now += 3_600
    assert live.request_stop(KEY, update_id=31) == "nothing_running"


def test_with_no_count_a_stop_before_the_turn_began_finds_nothing(aws: Any, clock: FakeClock) -> None:
    uncounted = ChatBacklog(dynamodb=aws.dynamodb, table=aws.resources.table, limit=0)
    for backlog in (None, uncounted):
        live = live_turns(aws, clock, backlog)
        assert uncounted.admit(KEY.canonical, now=clock()) == "queued"  # nothing written
        assert live.request_stop(KEY, update_id=41) == "nothing_running"


def test_a_turn_that_begins_while_the_stop_looks_is_stopped(
    aws: Any, clock: FakeClock, backlog: ChatBacklog
) -> None:
    # The stop finds no turn running; the consumer expects one before the stop's transaction.
    dynamodb = aws.client("dynamodb")
    live = live_turns(aws, clock, backlog, dynamodb)
    consumer_view = live_turns(aws, clock, None)
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 50

    def turn_begins(**_: Any) -> None:
        assert consumer_view.expect(KEY, 50)

    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", turn_begins)
    assert live.request_stop(KEY, update_id=51) == "stopping"
    assert live.stop_requested(KEY, 50)


def test_a_stop_sent_while_a_failed_turn_waits_for_its_retry_stops_that_retry_not_the_next(
    aws: Any, clock: FakeClock, backlog: ChatBacklog
) -> None:
    # The first run of message 60 failed (the model overloaded, the session busy): the record
    # waits in the queue for its retry, still counted, while the live item says turn 60 ended.
    live = live_turns(aws, clock, backlog)
    for _ in (60, 61):
        assert backlog.admit(KEY.canonical, now=clock()) == "queued"
    assert live.expect(KEY, 60) and not live.begin(KEY, 60)
    live.end(KEY, 60)
    assert live.request_stop(KEY, update_id=62) == "stopping"
    # The retry is the turn that starts next: it is the one stopped, before any model call.
    assert live.expect(KEY, 60) and live.stop_requested(KEY, 60)
    assert live.begin(KEY, 60)
    live.end(KEY, 60)
    backlog.release(KEY.canonical, now=clock())
    # And the message queued behind it is answered as usual.
    assert live.expect(KEY, 61) and not live.stop_requested(KEY, 61)


def test_a_stop_kept_for_a_message_that_started_no_turn_lapses_before_a_later_message_can_take_it(
    aws: Any, clock: FakeClock, backlog: ChatBacklog
) -> None:
    # The stop came as the last answer was being sent (the count still held its message), so it
    # waits for a turn that never starts. After a week with no update at all, Telegram numbers
    # the next one at random: the user's next message may carry a lower id than that stop.
    live = live_turns(aws, clock, backlog)
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 7000
    assert live.expect(KEY, 7000) and not live.begin(KEY, 7000)
    live.end(KEY, 7000)
    assert live.request_stop(KEY, update_id=7001) == "stopping"  # for nothing
    backlog.release(KEY.canonical, now=clock())
    clock.now += 8 * 86_400
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 12, numbered afresh
    assert live.expect(KEY, 12) and not live.stop_requested(KEY, 12)
    assert not live.begin(KEY, 12)


def test_a_turn_that_begins_while_a_stop_is_being_kept_still_begins_and_takes_the_stop(
    aws: Any, clock: FakeClock, backlog: ChatBacklog
) -> None:
    # DynamoDB refuses a plain write to an item an ongoing transaction holds
    # (TransactionConflictException): the runtime's begin can meet the transaction of a stop
    # being kept. Refused, the turn would run unwatched and past the stop it was told of.
    live = live_turns(aws, clock, backlog)
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 80
    assert live.request_stop(KEY, update_id=81) == "stopping"
    conflict = AwsFault("dynamodb:UpdateItem", times=1, status=400, code="TransactionConflictException")
    with FaultProxy(aws.endpoint, services=aws.endpoints.services, faults=[conflict]) as proxy:
        runtime_view = live_turns(aws, clock, None, proxy.client("dynamodb"))
        assert runtime_view.begin(KEY, 80)
        assert proxy.failed == ["dynamodb:UpdateItem"]


def test_a_message_released_while_a_stop_checks_the_count_is_not_left_counted(
    aws: Any, clock: FakeClock, backlog: ChatBacklog
) -> None:
    # The consumer releases the answered message as a /stop's transaction checks the count:
    # DynamoDB refuses the release (TransactionConflictException). Left counted while the chat
    # stays busy, every /stop with nothing running would answer "Stopping…" for nothing.
    live = live_turns(aws, clock, backlog)
    assert backlog.admit(KEY.canonical, now=clock()) == "queued"  # message 90
    conflict = AwsFault("dynamodb:UpdateItem", times=1, status=400, code="TransactionConflictException")
    with FaultProxy(aws.endpoint, services=aws.endpoints.services, faults=[conflict]) as proxy:
        consumer_count = ChatBacklog(dynamodb=proxy.client("dynamodb"), table=aws.resources.table, limit=10)
        consumer_count.release(KEY.canonical, now=clock())
        assert proxy.failed == ["dynamodb:UpdateItem"]
    assert live.request_stop(KEY, update_id=91) == "nothing_running"


def test_a_stop_after_allow_and_before_its_turn_started_stops_that_turn_and_declines_the_call(
    aws: Any, clock: FakeClock
) -> None:
    approvals = Approvals(dynamodb=aws.dynamodb, table=aws.resources.table, clock=clock)
    live = live_turns(aws, clock, None, approvals=approvals)  # no backlog count kept
    asked(approvals, "a1")
    # Pending: a stop has nothing to stop (the reply says to deny the call) and changes nothing.
    assert live.request_stop(KEY, update_id=70) == "call_waiting"
    assert approvals.current(KEY).state == "pending"  # type: ignore[union-attr]
    approvals.decide(KEY, "a1", "once", decided_by="ada")  # the press, update 71, is queued
    assert live.request_stop(KEY, update_id=72) == "stopping"
    declined = approvals.current(KEY)
    assert declined is not None and (declined.state, declined.choice, declined.answered_by) == (
        "decided",
        "deny",
        "stop",
    )
    assert live.expect(KEY, 71) and live.stop_requested(KEY, 71)  # the press's turn
    live.end(KEY, 71)
    # Its stop is spent: a second /stop finds nothing, and a later message is not stopped.
    assert live.request_stop(KEY, update_id=73) == "nothing_running"
    assert live.expect(KEY, 74) and not live.stop_requested(KEY, 74)


def test_a_stop_once_the_allowed_call_was_let_through_only_stops_a_running_turn(
    aws: Any, clock: FakeClock
) -> None:
    approvals = Approvals(dynamodb=aws.dynamodb, table=aws.resources.table, clock=clock)
    live = live_turns(aws, clock, None, approvals=approvals)
    asked(approvals, "a2")
    approvals.decide(KEY, "a2", "always", decided_by="ada")
    assert live.expect(KEY, 80) and approvals.use(KEY, "a2")  # its turn took the allowance
    live.end(KEY, 80)
    assert live.request_stop(KEY, update_id=81) == "nothing_running"  # it ran: nothing to decline
    used = approvals.current(KEY)
    assert used is not None and (used.state, used.choice, used.answered_by) == ("used", "always", "button")


def test_a_turn_that_begins_while_the_stop_declines_the_call_is_stopped_and_the_call_kept(
    aws: Any, clock: FakeClock
) -> None:
    dynamodb = aws.client("dynamodb")
    approvals = Approvals(dynamodb=aws.dynamodb, table=aws.resources.table, clock=clock)
    live = live_turns(aws, clock, None, dynamodb, approvals)
    consumer_view = live_turns(aws, clock, None)
    asked(approvals, "a3")
    approvals.decide(KEY, "a3", "once", decided_by="ada")  # update 90

    def turn_begins(**_: Any) -> None:
        assert consumer_view.expect(KEY, 90)

    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", turn_begins)
    assert live.request_stop(KEY, update_id=91) == "stopping"
    assert live.stop_requested(KEY, 90)  # stopped as any running turn is
    # The transaction did not happen: the decision stands for the turn that is stopping.
    kept = approvals.current(KEY)
    assert kept is not None and (kept.choice, kept.answered_by) == ("once", "button")


def test_a_call_the_stop_declined_is_not_let_through_by_a_turn_that_read_it_allowed(
    aws: Any, clock: FakeClock
) -> None:
    """A turn that read the decision before the stop declined it (one whose live item could not
    be written runs unwatched) cannot take the allowance afterwards."""
    approvals = Approvals(dynamodb=aws.dynamodb, table=aws.resources.table, clock=clock)
    live = live_turns(aws, clock, None, approvals=approvals)
    asked(approvals, "a4")
    approvals.decide(KEY, "a4", "once", decided_by="ada")
    assert live.request_stop(KEY, update_id=95) == "stopping"
    assert not approvals.use(KEY, "a4")
    assert approvals.stop(KEY, "a4") is not None  # still declined (a retry of the stopped turn)
    approvals.settle(KEY, "a4")
    assert approvals.stop(KEY, "a4") is None  # done with: nothing to decline


def test_progress_a_newer_runtime_published_with_an_activity_of_a_kind_unknown_here_is_shown(
    aws: Any, clock: FakeClock
) -> None:
    """A consumer one release behind its runtime (deploys update the runtime first) still shows
    the running turn's progress when the runtime names a kind of activity it does not know: as a
    tool's, by its name, and the operator sees the skew (before, the draft stayed blank all turn)."""
    from session_core import ToolActivity, TurnProgress
    from structlog.testing import capture_logs

    live = live_turns(aws, clock, None)
    live.expect(KEY, 5)
    live.begin(KEY, 5)
    published = TurnProgress(
        turn_id=5, text="Looking", activity=ToolActivity(kind="subagent", name="planner"), seq=3
    )
    live.publish(KEY, published)
    item = aws.dynamodb.get_item(
        TableName=aws.resources.table, Key={"pk": {"S": f"session|{KEY.canonical}"}, "sk": {"S": "live"}}
    )["Item"]
    newer = item["progress"]["S"].replace('"subagent"', '"some_future_value"')
    aws.dynamodb.update_item(
        TableName=aws.resources.table,
        Key={"pk": item["pk"], "sk": item["sk"]},
        UpdateExpression="SET progress = :p",
        ExpressionAttributeValues={":p": {"S": newer}},
    )

    with capture_logs() as logs:
        shown = live.progress(KEY, 5)

    assert shown == TurnProgress(
        turn_id=5, text="Looking", activity=ToolActivity(kind="tool", name="planner"), seq=3
    )
    assert [(e["event"], e["field"], e["value"]) for e in logs] == [
        ("progress.unknown_value", "activity.kind", "some_future_value")
    ]


def test_a_stop_kept_for_a_message_edited_into_one_stops_that_messages_turn_alone(
    aws: Any, clock: FakeClock
) -> None:
    """Its sender edited message 31 into a /stop while nothing ran (no count: nothing said a
    message waits): turns started before it are not stopped, its own is, whoever named."""
    live = live_turns(aws, clock, None)
    bob = Stopper(user_id=502, name="Bob")
    assert live.request_stop(KEY, update_id=90, by=bob) == "nothing_running"
    live.keep_stop_for_message(KEY, 31, by=bob)
    assert live.expect(KEY, 80, message_ids=(30,)) and not live.stop_requested(KEY, 80)
    live.end(KEY, 80)
    assert live.expect(KEY, 81, message_ids=(31,)) and live.stop_requested(KEY, 81)
    assert live.begin(KEY, 81) and live.stopped_by(KEY, 81) == bob
    live.end(KEY, 81)
    assert live.expect(KEY, 91, message_ids=(32,)) and not live.stop_requested(KEY, 91)


def test_a_stop_kept_for_any_message_a_turn_answers_stops_it_naming_the_first_to_edit(
    aws: Any, clock: FakeClock
) -> None:
    """An album (or a text the app split) is one turn named after its first message: Bob
    edited its third part into a /stop, then Carol its second."""
    live = live_turns(aws, clock, None)
    bob, carol = Stopper(user_id=502, name="Bob"), Stopper(user_id=503, name="Carol")
    live.keep_stop_for_message(KEY, 33, by=bob)
    live.keep_stop_for_message(KEY, 32, by=carol)
    assert live.expect(KEY, 80, message_ids=(31, 32, 33)) and live.stop_requested(KEY, 80)
    assert live.stopped_by(KEY, 80) == bob


def test_a_stop_kept_for_an_edited_message_lapses_and_many_keep_the_live_item_small(
    aws: Any, clock: FakeClock
) -> None:
    live = live_turns(aws, clock, None)
    live.keep_stop_for_message(KEY, 1)
    clock.now += 3 * 3_600  # its message never came: the stop lapses, as a kept stop does
    assert live.expect(KEY, 10, message_ids=(1,)) and not live.stop_requested(KEY, 10)
    live.end(KEY, 10)
    for message_id in range(100, 125):
        live.keep_stop_for_message(KEY, message_id)
    item = aws.dynamodb.get_item(
        TableName=aws.resources.table, Key={"pk": {"S": f"session|{KEY.canonical}"}, "sk": {"S": "live"}}
    )["Item"]
    assert len(item["stopped_messages"]["L"]) <= 10
    assert live.expect(KEY, 11, message_ids=(124,)) and live.stop_requested(KEY, 11)  # the latest holds


def test_two_edits_into_a_stop_at_once_when_the_list_is_full_are_both_kept(
    aws: Any, clock: FakeClock
) -> None:
    """Two members edit their waiting messages into /stop at the same moment while the chat's
    list of such messages is full: each reads the full list and writes it back with its own
    message, and neither may overwrite the other's (its message would then be answered)."""
    live = live_turns(aws, clock, None)
    for message_id in range(100, 110):
        live.keep_stop_for_message(KEY, message_id)
    for first in range(200, 210, 2):  # several rounds: each must keep both
        racers = [
            live_turns(aws, clock, None, dynamodb=local_client("dynamodb", aws.endpoints.url_for("dynamodb")))
            for _ in range(2)
        ]
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=_edit_at_once, args=(barrier, racers[i], first + i)) for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for message_id in (first, first + 1):
            assert live.expect(KEY, message_id, message_ids=(message_id,)), message_id
            assert live.stop_requested(KEY, message_id), f"the stop for message {message_id} was lost"
            live.end(KEY, message_id)


def _edit_at_once(barrier: threading.Barrier, live: LiveTurnsWithBacklog, message_id: int) -> None:
    barrier.wait()
    live.keep_stop_for_message(KEY, message_id)
