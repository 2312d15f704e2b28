"""Exactly-once turns (``TurnLedger``) against the registry on a real DynamoDB endpoint: a turn
runs under the lease at most once per saved answer, and every later ask replays that answer."""

from __future__ import annotations

from typing import Any

import pytest
from agentbot_testing import FakeClock
from session_core import TURN_VERSION, LeaseHeldError, SessionKey, SessionRegistry, TurnLedger, TurnResult

KEY = SessionKey(tenant="acme", chat_id=42, thread_id=0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(aws: Any, clock: FakeClock) -> SessionRegistry:
    return SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table, clock=clock)


def answer(turn_id: int, text: str = "hi") -> TurnResult:
    return TurnResult(
        version=TURN_VERSION, session_key=KEY.canonical, turn_id=turn_id, text=text, session_id="s-1"
    )


def test_a_new_turn_runs_under_the_lease_and_is_saved_once(registry: SessionRegistry) -> None:
    ledger = TurnLedger(registry, owner="runtime-a")
    start = ledger.start(KEY, 1, lease_s=60)
    assert start.replay is None and start.lease is not None

    saved = ledger.save(start.lease, answer(1))
    ledger.release(start.lease)

    assert saved.outcome == "saved" and saved.result == answer(1)
    again = ledger.start(KEY, 1, lease_s=60)
    assert again.lease is None and again.replay is not None
    assert again.replay.replayed and again.replay.text == "hi"
    # A replay gives the lease straight back: the chat's next turn is not kept waiting.
    assert TurnLedger(registry, owner="runtime-b").start(KEY, 2, lease_s=60).lease is not None


def test_a_saved_turn_replays_even_while_another_turn_holds_the_lease(registry: SessionRegistry) -> None:
    first = TurnLedger(registry, owner="runtime-a")
    lease = first.start(KEY, 1, lease_s=60).lease
    assert lease is not None
    first.save(lease, answer(1))
    first.release(lease)
    assert first.start(KEY, 2, lease_s=60).lease is not None  # turn 2 now runs

    other = TurnLedger(registry, owner="runtime-b")
    replay = other.start(KEY, 1, lease_s=60).replay
    assert replay is not None and replay.text == "hi"
    with pytest.raises(LeaseHeldError):  # turn 3 has nothing saved: busy
        other.start(KEY, 3, lease_s=60)


def test_the_answer_another_run_saved_first_counts(registry: SessionRegistry, clock: FakeClock) -> None:
    stalled = TurnLedger(registry, owner="runtime-a")
    lease = stalled.start(KEY, 5, lease_s=10).lease
    assert lease is not None
    clock.now += 11  # runtime-a stalls past its lease; runtime-b takes over and answers
    taker = TurnLedger(registry, owner="runtime-b")
    taken = taker.start(KEY, 5, lease_s=60).lease
    assert taken is not None
    assert taker.save(taken, answer(5, "the other run's")).outcome == "saved"

    saved = stalled.save(lease, answer(5, "mine"))

    assert saved.outcome == "saved_by_another_run"
    assert saved.result is not None and saved.result.text == "the other run's" and saved.result.replayed


def test_a_lost_lease_with_nothing_saved_saves_nothing(registry: SessionRegistry, clock: FakeClock) -> None:
    stalled = TurnLedger(registry, owner="runtime-a")
    lease = stalled.start(KEY, 6, lease_s=10).lease
    assert lease is not None
    clock.now += 11
    assert TurnLedger(registry, owner="thief").start(KEY, 7, lease_s=60).lease is not None

    saved = stalled.save(lease, answer(6))

    assert saved.outcome == "not_saved" and saved.result is None
    assert stalled.saved(KEY, 6) is None


def test_a_retried_save_after_a_lost_response_keeps_the_first(registry: SessionRegistry) -> None:
    ledger = TurnLedger(registry, owner="runtime-a")
    lease = ledger.start(KEY, 8, lease_s=60).lease
    assert lease is not None
    assert ledger.save(lease, answer(8)).outcome == "saved"
    # The same save again (its response was lost): it landed already, nothing changes.
    again = ledger.save(lease, answer(8))
    assert again.outcome == "saved" and again.result == answer(8)
    record = registry.get_session(KEY)
    assert record is not None and record.turns == 1


def _store_result_as_written(aws: Any, turn_id: int, raw: bytes) -> None:
    """Turn ``turn_id`` of KEY recorded with ``raw`` as its result, as another release wrote it."""
    aws.dynamodb.put_item(
        TableName=aws.resources.table,
        Item={"pk": {"S": "session|acme/42/0"}, "sk": {"S": f"turn|{turn_id}"}, "result": {"B": raw}},
    )


def test_a_retry_of_a_turn_recorded_before_the_turn_id_rename_replays(
    aws: Any, registry: SessionRegistry
) -> None:
    # The item as the registry wrote it with TURN_VERSION 1 (``update_id``, ``user_message``).
    v1 = (
        b'{"version":1,"session_key":"acme/42/0","update_id":31,"text":"answered before the deploy",'
        b'"session_id":"s-1","cost_usd":0.5,"user_message":null,"retryable":false,"replayed":false}'
    )
    _store_result_as_written(aws, 31, v1)

    start = TurnLedger(registry, owner="runtime-new").start(KEY, 31, lease_s=60)

    assert start.lease is None and start.replay is not None  # replayed, not run again
    assert (start.replay.turn_id, start.replay.text) == (31, "answered before the deploy")
    assert start.replay.replayed


def test_a_long_answer_is_recorded_and_replayed_whole(registry: SessionRegistry) -> None:
    """A DynamoDB item holds at most 400 KB: an answer longer than that (a document the agent
    wrote out in the chat) must still be recorded, or a retry would run the model again."""
    text = "".join(
        f"Line {i}: the quarterly figures for region {i % 17} are in the table.\n" for i in range(12_000)
    )
    assert len(text.encode()) > 400_000
    ledger = TurnLedger(registry, owner="runtime-a")
    start = ledger.start(KEY, 11, lease_s=60)
    assert start.lease is not None

    saved = ledger.save(start.lease, answer(11, text))
    ledger.release(start.lease)

    assert saved.outcome == "saved"
    again = TurnLedger(registry, owner="runtime-b").start(KEY, 11, lease_s=60)
    assert again.replay is not None and again.replay.text == text


def test_a_retry_of_a_turn_a_newer_runtime_recorded_with_a_reason_unknown_here_replays(
    aws: Any, registry: SessionRegistry
) -> None:
    """Rolled back after a newer runtime recorded a turn stopped for a reason this release does
    not know: the retry replays the recorded answer (a stop for no reason it can name), not a
    failed turn and not a second model run."""
    newer = (
        b'{"version":2,"session_key":"acme/42/0","turn_id":32,"text":"stopped half way",'
        b'"session_id":"s-1","cost_usd":0.5,"stopped":true,"stop_reason":"some_future_reason",'
        b'"files_not_sent":[{"file_name":"out.bin","reason":"some_future_reason"}]}'
    )
    _store_result_as_written(aws, 32, newer)

    start = TurnLedger(registry, owner="runtime-rolled-back").start(KEY, 32, lease_s=60)

    assert start.lease is None and start.replay is not None  # replayed, not run again
    replay = start.replay
    assert (replay.text, replay.stopped, replay.stop_reason, replay.replayed) == (
        "stopped half way",
        True,
        None,
        True,
    )
    assert [f.reason for f in replay.files_not_sent] == ["failed"]
