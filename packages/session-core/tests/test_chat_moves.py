"""A chat that moved to a new id (a group upgraded to a supergroup) keeps its conversation:
the registry carries it over (moto over real HTTP)."""

from __future__ import annotations

from typing import Any

import pytest
from agentbot_testing import FakeClock
from session_core import (
    TURN_VERSION,
    Approvals,
    BudgetCaps,
    BudgetLedger,
    LeaseHeldError,
    SessionKey,
    SessionRegistry,
    TurnResult,
    UnsentFile,
    undelivered_files,
)

OLD = SessionKey(tenant="acme", chat_id=-4055)
NEW = SessionKey(tenant="acme", chat_id=-1004055)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(aws: Any, clock: FakeClock) -> SessionRegistry:
    return SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table, clock=clock)


@pytest.fixture
def approvals(aws: Any, clock: FakeClock) -> Approvals:
    """The chats' grants, on the registry's clock (a grant past its expiry is gone)."""
    return Approvals(dynamodb=aws.dynamodb, table=aws.resources.table, clock=clock)


def talk(registry: SessionRegistry, key: SessionKey, turn_id: int, *, session_id: str, cost: float) -> None:
    """One recorded turn of ``key``'s conversation."""
    lease = registry.acquire_lease(key, owner="runtime", duration_s=60)
    turn = TurnResult(
        version=TURN_VERSION,
        session_key=key.canonical,
        turn_id=turn_id,
        text="ok",
        session_id=session_id,
        cost_usd=cost,
        session_cost_usd=cost * turn_id,
        num_turns=1,
    )
    registry.record_turn(lease, result=turn)
    registry.release_lease(lease)


def test_the_new_chat_goes_on_with_the_old_chats_session_grants_and_totals(registry, approvals) -> None:
    talk(registry, OLD, 1, session_id="sdk-old", cost=0.25)
    talk(registry, OLD, 2, session_id="sdk-old", cost=0.25)
    approvals.grant(OLD, "Bash(git status)", granted_by="@ada")

    assert registry.move_chat(OLD, NEW) is True

    moved, old = registry.get_session(NEW), registry.get_session(OLD)
    assert moved is not None and old is not None
    assert (moved.sdk_session_id, moved.turns, moved.cost_usd) == ("sdk-old", 2, 0.5)
    assert moved.sdk_session_cost_usd == old.sdk_session_cost_usd  # the next turn is priced right
    assert moved.transcripts_of == OLD.canonical  # where its transcript is
    assert [g.rule for g in approvals.grants(NEW)] == ["Bash(git status)"]
    # A turn of the new chat takes its own lease and records on top of what moved.
    talk(registry, NEW, 3, session_id="sdk-old", cost=0.25)
    after = registry.get_session(NEW)
    assert after is not None and after.turns == 3 and after.transcripts_of == OLD.canonical


def test_the_group_lets_go_of_the_session_it_handed_on_so_one_chat_alone_writes_it(registry) -> None:
    # The group's records can still run after the move (a retried turn, a message queued
    # behind its last turn): under the group's own lease, beside the supergroup's turns.
    talk(registry, OLD, 1, session_id="sdk-old", cost=0.25)
    assert registry.move_chat(OLD, NEW) is True
    assert registry.move_chat(OLD, NEW) is True  # a repeat

    group, supergroup = registry.get_session(OLD), registry.get_session(NEW)
    assert supergroup is not None and supergroup.sdk_session_id == "sdk-old"
    assert group is not None and group.sdk_session_id is None  # a late turn there starts afresh
    assert group.previous_session_ids == ("sdk-old",) and group.turns == 1  # its record stays


def test_files_the_groups_last_answer_did_not_deliver_reach_the_supergroups_next_turn(registry) -> None:
    # The move waits only for the group's turn to be recorded; its answer (and the files that
    # did not go) is delivered after, by then in the supergroup, whose next turn must be told.
    talk(registry, OLD, 1, session_id="sdk-old", cost=0.25)
    assert registry.move_chat(OLD, NEW) is True
    noted = undelivered_files(1, [UnsentFile(file_name="archive.zip", reason="too_large")])
    assert noted is not None

    registry.keep_undelivered_files(OLD, noted)

    supergroup = registry.get_session(NEW)
    assert supergroup is not None and supergroup.undelivered_files == noted
    # A late message of the group, answered from a conversation of its own: its files stay
    # with it, never told to the supergroup's agent.
    talk(registry, OLD, 2, session_id="sdk-late", cost=0.25)
    talk(registry, NEW, 3, session_id="sdk-old", cost=0.25)  # told: forgotten there
    late = undelivered_files(2, [UnsentFile(file_name="late.csv", reason="too_large")])
    assert late is not None
    registry.keep_undelivered_files(OLD, late)
    supergroup = registry.get_session(NEW)
    assert supergroup is not None and supergroup.undelivered_files is None


def test_files_the_groups_last_answer_did_not_deliver_follow_even_after_a_supergroup_turn(registry) -> None:
    # The supergroup's messages queue apart from the group's: one of its turns can be recorded
    # while the group's last answer is still held back (a 429), before any agent was told.
    talk(registry, OLD, 1, session_id="sdk-old", cost=0.25)
    assert registry.move_chat(OLD, NEW) is True
    talk(registry, NEW, 3, session_id="sdk-old", cost=0.25)
    noted = undelivered_files(1, [UnsentFile(file_name="archive.zip", reason="too_large")])
    assert noted is not None

    registry.keep_undelivered_files(OLD, noted)

    supergroup = registry.get_session(NEW)
    assert supergroup is not None and supergroup.undelivered_files == noted


def test_the_move_waits_for_a_turn_of_the_old_chat_that_is_still_running(registry) -> None:
    talk(registry, OLD, 1, session_id="sdk-old", cost=0.25)
    running = registry.acquire_lease(OLD, owner="runtime", duration_s=60)

    with pytest.raises(LeaseHeldError) as held:
        registry.move_chat(OLD, NEW)

    assert held.value.retryable  # the consumer retries the record; the new chat's queue waits
    assert registry.get_session(NEW) is None
    registry.release_lease(running)
    assert registry.move_chat(OLD, NEW) is True


def test_a_repeated_move_changes_nothing_and_a_new_chat_with_its_own_conversation_keeps_it(registry) -> None:
    talk(registry, OLD, 1, session_id="sdk-old", cost=0.25)
    assert registry.move_chat(OLD, NEW) is True
    talk(registry, NEW, 2, session_id="sdk-old", cost=0.25)
    assert registry.move_chat(OLD, NEW) is True  # a redelivered record: same content again
    record = registry.get_session(NEW)
    assert record is not None and record.turns == 2  # the repeat re-copied the old totals only

    other = SessionKey(tenant="acme", chat_id=-100777)
    talk(registry, other, 5, session_id="sdk-own", cost=1.0)
    assert registry.move_chat(OLD, other) is False
    kept = registry.get_session(other)
    assert kept is not None and (kept.sdk_session_id, kept.transcripts_of) == ("sdk-own", None)


def test_a_chat_that_started_afresh_with_new_before_it_moved_keeps_its_grants_and_totals(
    registry, approvals
) -> None:
    talk(registry, OLD, 1, session_id="sdk-old", cost=0.25)
    approvals.grant(OLD, "Bash(git status)", granted_by="@ada")
    registry.start_new_session(OLD)  # /new: the grants stay, the next message starts afresh

    assert registry.move_chat(OLD, NEW) is True

    moved = registry.get_session(NEW)
    assert moved is not None and moved.sdk_session_id is None
    assert (moved.turns, moved.previous_session_ids) == (1, ("sdk-old",))
    assert [g.rule for g in approvals.grants(NEW)] == ["Bash(git status)"]


def test_a_chat_without_a_conversation_moves_nothing(registry) -> None:
    assert registry.move_chat(OLD, NEW) is False
    assert registry.get_session(NEW) is None


def test_the_days_spending_follows_the_chat_once(aws) -> None:
    clock = FakeClock()
    ledger = BudgetLedger(
        dynamodb=aws.dynamodb,
        table=aws.resources.table,
        caps=BudgetCaps(chat_daily_usd=1.0, turn_usd=0.5),
        tenant="acme",
        clock=clock,
    )
    hold = ledger.hold(chat_id=OLD.chat_id, user_id=42)
    assert not isinstance(hold, Exception)
    ledger.settle(hold, 0.75)

    ledger.carry_chat_spend(from_chat=OLD.chat_id, to_chat=NEW.chat_id)
    ledger.carry_chat_spend(from_chat=OLD.chat_id, to_chat=NEW.chat_id)  # a retried move

    spent = {(s.scope, s.period): s.spent_usd for s in ledger.spending(chat_id=NEW.chat_id, user_id=None)}
    assert spent[("chat", "day")] == 0.75 and spent[("chat", "month")] == 0.75
    # Upgrading the group is no way round its cap: one more turn fits, then it is refused.
    assert not hasattr(ledger.hold(chat_id=NEW.chat_id, user_id=None), "scope")


def test_a_groups_list_written_again_late_is_not_told_to_the_supergroup_twice(registry) -> None:
    # A stuck attempt of the group's last delivery writes its list again after the
    # supergroup's next turn was told of it: that agent would hear of the files twice.
    talk(registry, OLD, 1, session_id="sdk-old", cost=0.25)
    assert registry.move_chat(OLD, NEW) is True
    noted = undelivered_files(1, [UnsentFile(file_name="archive.zip", reason="too_large")])
    assert noted is not None
    registry.keep_undelivered_files(OLD, noted)
    talk(registry, NEW, 3, session_id="sdk-old", cost=0.25)  # told of it

    registry.keep_undelivered_files(OLD, noted)

    supergroup = registry.get_session(NEW)
    assert supergroup is not None and supergroup.undelivered_files is None


def test_a_groups_list_kept_before_the_move_is_not_told_to_the_supergroup_twice(registry) -> None:
    talk(registry, OLD, 1, session_id="sdk-old", cost=0.25)
    noted = undelivered_files(1, [UnsentFile(file_name="archive.zip", reason="too_large")])
    assert noted is not None
    registry.keep_undelivered_files(OLD, noted)  # carried over by the move
    assert registry.move_chat(OLD, NEW) is True
    talk(registry, NEW, 3, session_id="sdk-old", cost=0.25)  # told of it

    registry.keep_undelivered_files(OLD, noted)  # written again late

    supergroup = registry.get_session(NEW)
    assert supergroup is not None and supergroup.undelivered_files is None


def test_a_groups_late_list_does_not_replace_the_supergroups_own(registry) -> None:
    # The supergroup's own answer left files undelivered after the group's list was held
    # back: its next agent must still be told of the supergroup's.
    talk(registry, OLD, 1, session_id="sdk-old", cost=0.25)
    assert registry.move_chat(OLD, NEW) is True
    talk(registry, NEW, 3, session_id="sdk-old", cost=0.25)
    own = undelivered_files(3, [UnsentFile(file_name="report.pdf", reason="too_large")])
    group = undelivered_files(1, [UnsentFile(file_name="archive.zip", reason="too_large")])
    assert own is not None and group is not None
    registry.keep_undelivered_files(NEW, own)

    registry.keep_undelivered_files(OLD, group)

    supergroup = registry.get_session(NEW)
    assert supergroup is not None and supergroup.undelivered_files == own


def test_a_groups_list_forgotten_by_a_later_try_is_forgotten_where_it_followed(registry) -> None:
    """The group's last answer failed for good after the move (its list followed to the
    supergroup), then a later try delivered it all: the supergroup's agent is told nothing."""
    talk(registry, OLD, 1, session_id="sdk-old", cost=0.25)
    assert registry.move_chat(OLD, NEW) is True
    noted = undelivered_files(1, [UnsentFile(file_name="archive.zip", reason="failed")], text_lost=True)
    assert noted is not None
    registry.keep_undelivered_files(OLD, noted)

    registry.forget_undelivered_files(OLD, 1)

    group, supergroup = registry.get_session(OLD), registry.get_session(NEW)
    assert group is not None and group.undelivered_files is None
    assert supergroup is not None and supergroup.undelivered_files is None
