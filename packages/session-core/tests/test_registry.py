"""The session registry against a real DynamoDB endpoint (the moto server): what a chat, a
redelivered update or an operator would notice."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from agentbot_testing import CLOCK_START as START
from agentbot_testing import FakeClock
from botocore.config import Config
from botocore.exceptions import ClientError
from session_core import (
    DEFAULT_RETENTION_DAYS,
    TURN_VERSION,
    Lease,
    LeaseHeldError,
    LeaseLostError,
    SessionKey,
    SessionRecord,
    SessionRegistry,
    StaleHeadError,
    StorageError,
    TurnResult,
    configure_logging,
)

DAY = 86_400
KEY = SessionKey(tenant="acme", chat_id=-100123, thread_id=7)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(aws: Any, clock: FakeClock) -> SessionRegistry:
    return SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table, clock=clock)


def result(update_id: int, *, session_id: str = "sdk-1", cost: float = 0.25, text: str = "hi") -> TurnResult:
    return TurnResult(
        version=TURN_VERSION,
        session_key=KEY.canonical,
        turn_id=update_id,
        text=text,
        session_id=session_id,
        cost_usd=cost,
        num_turns=1,
    )


def raw_item(aws: Any, pk: str, sk: str) -> dict[str, Any]:
    item: dict[str, Any] = aws.dynamodb.get_item(
        TableName=aws.resources.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
    )["Item"]
    return item


def complete(registry: SessionRegistry, lease: Lease, turn: TurnResult) -> SessionRecord:
    """Record ``turn`` and read the session record it left."""
    registry.record_turn(lease, result=turn)
    record = registry.get_session(lease.session_key)
    assert record is not None
    return record


def run_turn(registry: SessionRegistry, update_id: int, owner: str = "runtime-a", **kw: Any) -> Lease:
    lease = registry.acquire_lease(KEY, owner=owner, duration_s=60)
    complete(registry, lease, result(update_id, **kw))
    registry.release_lease(lease)
    return lease


# -- sessions and the head ---------------------------------------------------------------------


def test_first_turn_creates_the_session_record(registry: SessionRegistry, clock: FakeClock) -> None:
    assert registry.get_session(KEY) is None

    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    assert lease.head_version == 0
    clock.now += 5
    record = complete(registry, lease, result(1001, session_id="sdk-1", cost=0.25))

    assert record == registry.get_session(KEY)
    assert record.sdk_session_id == "sdk-1"
    assert (record.head_version, record.turns, record.cost_usd) == (1, 1, 0.25)
    assert (record.created_at, record.updated_at) == (START, START + 5)
    assert record.session_key == KEY


def test_turns_accumulate_and_the_next_lease_starts_at_the_new_head(registry: SessionRegistry) -> None:
    run_turn(registry, 1, cost=0.5)
    run_turn(registry, 2, cost=0.25)
    lease = registry.acquire_lease(KEY, owner="runtime-b", duration_s=60)
    assert lease.head_version == 2
    record = registry.get_session(KEY)
    assert record is not None
    assert (record.turns, record.cost_usd) == (2, 0.75)


def test_a_turn_costing_under_a_hundredth_of_a_cent_is_recorded(registry: SessionRegistry) -> None:
    """A short turn of a small model on cached input costs ~$0.00003, which Python writes
    "3e-05": the record (and with it the answer) must not fail on how the number is spelt."""
    run_turn(registry, 1, cost=0.00003)
    run_turn(registry, 2, cost=0.00004, session_id="sdk-1")
    record = registry.get_session(KEY)
    assert record is not None
    assert (record.turns, record.cost_usd) == (2, pytest.approx(0.00007))


def test_stale_head_is_rejected_and_overwrites_nothing(registry: SessionRegistry) -> None:
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    complete(registry, lease, result(1, session_id="sdk-1"))
    before = registry.get_session(KEY)

    # The same lease still says head 0, but the head is at 1 now.
    with pytest.raises(StaleHeadError) as info:
        complete(registry, lease, result(2, session_id="sdk-forked", cost=9.0))

    assert info.value.expected_version == 0
    assert info.value.key == KEY.canonical
    assert isinstance(info.value.__cause__, ClientError)  # raised from the provider's error
    assert registry.get_session(KEY) == before
    assert registry.get_turn_result(KEY, 2) is None  # the turn item was not written either


def test_a_turn_without_session_id_keeps_the_current_one(registry: SessionRegistry) -> None:
    run_turn(registry, 1, session_id="sdk-1")
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    failed = TurnResult(version=TURN_VERSION, session_key=KEY.canonical, turn_id=2, error_kind="model_error")
    record = complete(registry, lease, failed)
    assert record.sdk_session_id == "sdk-1"
    assert record.head_version == 2


def test_result_for_another_session_is_refused(registry: SessionRegistry) -> None:
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    other = TurnResult(version=TURN_VERSION, session_key="acme/5/0", turn_id=1)
    with pytest.raises(ValueError, match="session_key"):
        complete(registry, lease, other)
    record = registry.get_session(KEY)
    assert record is not None and record.head_version == 0


def test_start_new_session_keeps_the_old_ids_retrievable(registry: SessionRegistry) -> None:
    assert registry.start_new_session(KEY) is None  # nothing to forget yet

    run_turn(registry, 1, session_id="sdk-1")
    record = registry.start_new_session(KEY)
    assert record is not None
    assert record.sdk_session_id is None
    assert record.previous_session_ids == ("sdk-1",)
    assert record.turns == 1  # history of the chat is kept

    run_turn(registry, 2, session_id="sdk-2")
    record = registry.start_new_session(KEY)
    assert record is not None
    assert record.previous_session_ids == ("sdk-1", "sdk-2")
    # Asking again (a repeated /new) changes nothing, and has nothing to forget.
    assert registry.start_new_session(KEY) is None
    assert registry.get_session(KEY) == record


# -- leases ------------------------------------------------------------------------------------


def test_a_live_lease_of_another_owner_means_busy(registry: SessionRegistry) -> None:
    registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    with pytest.raises(LeaseHeldError) as info:
        registry.acquire_lease(KEY, owner="runtime-b", duration_s=60)
    assert info.value.holder == "runtime-a"
    assert info.value.expires_at == START + 60
    assert info.value.retryable
    # Other chats are not affected.
    other = SessionKey(tenant="acme", chat_id=42)
    assert registry.acquire_lease(other, owner="runtime-b", duration_s=60).head_version == 0


def test_the_holder_may_acquire_again(registry: SessionRegistry, clock: FakeClock) -> None:
    registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    clock.now += 30
    again = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    assert again.expires_at == START + 90


def test_an_expired_lease_is_taken_over_and_the_old_holder_loses_it(
    registry: SessionRegistry, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json_lines=True)
    crashed = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    clock.now += 61  # the container holding it died; the chat must not stay blocked
    taker = registry.acquire_lease(KEY, owner="runtime-b", duration_s=60)
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["event"], e["previous_owner"]) for e in logged] == [("expired_lease_taken_over", "runtime-a")]

    with pytest.raises(LeaseLostError) as info:
        registry.renew_lease(crashed, duration_s=60)
    assert info.value.owner == "runtime-a"
    with pytest.raises(LeaseLostError):
        complete(registry, crashed, result(1, session_id="sdk-zombie"))
    registry.release_lease(crashed)  # a lost lease releases quietly and frees nothing

    with pytest.raises(LeaseHeldError):
        registry.acquire_lease(KEY, owner="runtime-c", duration_s=60)
    record = complete(registry, taker, result(1, session_id="sdk-1"))
    assert (record.sdk_session_id, record.head_version, record.turns) == ("sdk-1", 1, 1)


def test_renewal_keeps_the_lease_alive_past_its_first_expiry(
    registry: SessionRegistry, clock: FakeClock
) -> None:
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    clock.now += 50
    renewed = registry.renew_lease(lease, duration_s=60)
    assert renewed.expires_at == START + 110
    assert renewed.head_version == lease.head_version
    clock.now += 30  # past the first expiry, inside the renewed one
    with pytest.raises(LeaseHeldError):
        registry.acquire_lease(KEY, owner="runtime-b", duration_s=60)
    complete(registry, renewed, result(1))


def test_an_unfinished_first_turn_names_its_session_only_while_its_lease_holds(
    registry: SessionRegistry, clock: FakeClock
) -> None:
    """A first turn ended unsaved after its tools ran: its session is the chat's (the next
    turn finds its tool work there), the head and the turn count stay; a run whose lease
    was taken over names nothing."""
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    registry.keep_unfinished_session(lease, "sdk-unfinished", session_cost_usd=0.5)
    record = registry.get_session(KEY)
    assert record is not None
    assert (record.sdk_session_id, record.sdk_session_cost_usd) == ("sdk-unfinished", 0.5)
    assert (record.head_version, record.turns) == (0, 0)

    clock.now += 61
    taker = registry.acquire_lease(KEY, owner="runtime-b", duration_s=60)
    with pytest.raises(LeaseLostError):
        registry.keep_unfinished_session(lease, "sdk-zombie", session_cost_usd=0.1)
    record = complete(registry, taker, result(1, session_id="sdk-1"))
    assert (record.sdk_session_id, record.head_version, record.turns) == ("sdk-1", 1, 1)


def test_release_lets_the_next_turn_in_and_completing_after_release_fails(
    registry: SessionRegistry,
) -> None:
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    registry.release_lease(lease)
    registry.release_lease(lease)  # twice is fine
    with pytest.raises(LeaseLostError):
        complete(registry, lease, result(1))
    assert registry.acquire_lease(KEY, owner="runtime-b", duration_s=60).head_version == 0


def race_for_lease(registry: SessionRegistry, key: SessionKey) -> tuple[list[str], list[str]]:
    """Two threads acquire ``key``'s lease at the same moment: (winners, holders reported busy)."""
    barrier = threading.Barrier(2)
    won: list[str] = []
    busy: list[str] = []

    def contend(owner: str) -> None:
        barrier.wait()
        try:
            registry.acquire_lease(key, owner=owner, duration_s=60)
            won.append(owner)
        except LeaseHeldError as exc:
            busy.append(exc.holder)

    threads = [threading.Thread(target=contend, args=(f"runtime-{n}",)) for n in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won, busy


def test_two_threads_racing_for_one_lease_exactly_one_wins(aws: Any) -> None:
    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)
    for round_no in range(20):
        won, busy = race_for_lease(registry, SessionKey(tenant="acme", chat_id=1000 + round_no))
        assert len(won) == 1 and busy == won, (round_no, won, busy)


# -- exactly once ------------------------------------------------------------------------------


def test_a_retried_update_gets_its_recorded_result(registry: SessionRegistry) -> None:
    assert registry.get_turn_result(KEY, 77) is None
    run_turn(registry, 77, text="the answer", session_id="sdk-1")

    replay = registry.get_turn_result(KEY, 77)
    assert replay is not None
    assert (replay.text, replay.session_id, replay.turn_id) == ("the answer", "sdk-1", 77)
    assert replay.replayed
    assert registry.get_turn_result(KEY, 78) is None


def test_completing_the_same_update_twice_counts_it_once(registry: SessionRegistry) -> None:
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    first = complete(registry, lease, result(5, cost=1.5))
    # The retry (e.g. the response was lost on the way back) must not double count.
    counted = registry.record_turn(lease, result=result(5, cost=1.5, text="different"))
    assert counted.replayed and counted.text == "hi"  # the first answer counts
    again = registry.get_session(KEY)
    assert again == first
    assert (again.turns, again.cost_usd, again.head_version) == (1, 1.5, 1)
    recorded = registry.get_turn_result(KEY, 5)
    assert recorded is not None and recorded.text == "hi"


# -- retention ---------------------------------------------------------------------------------


def test_every_item_expires_after_the_retention_and_use_refreshes_it(aws: Any, clock: FakeClock) -> None:
    ttl = aws.dynamodb.describe_time_to_live(TableName=aws.resources.table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    registry = SessionRegistry(
        dynamodb=aws.dynamodb, table=aws.resources.table, retention_days=3, clock=clock
    )
    pk = f"session|{KEY.canonical}"

    def expires(pk: str, sk: str) -> int:
        return int(raw_item(aws, pk, sk)["expires_at"]["N"])

    run_turn(registry, 1)
    first = int(START) + 3 * DAY
    assert expires(pk, "meta") == first
    assert expires(pk, "turn|1") == first

    clock.now += 2 * DAY  # the chat is used again two days later
    run_turn(registry, 2)
    assert expires(pk, "meta") == first + 2 * DAY
    assert expires(pk, "turn|2") == first + 2 * DAY


def test_default_retention_is_25_days(aws: Any, registry: SessionRegistry) -> None:
    assert DEFAULT_RETENTION_DAYS == 25  # infra/template.yaml's SessionTtlDays says the same (test_template)
    registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    item = raw_item(aws, f"session|{KEY.canonical}", "meta")
    assert int(item["expires_at"]["N"]) == int(START) + 25 * DAY


# -- storage faults ----------------------------------------------------------------------------


def test_a_missing_table_is_a_storage_error_naming_operation_and_table(aws: Any) -> None:
    registry = SessionRegistry(dynamodb=aws.dynamodb, table="no-such-table")
    with pytest.raises(StorageError) as info:
        registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    assert info.value.operation == "registry.acquire_lease"
    assert info.value.error_code == "ResourceNotFoundException"
    assert "no-such-table" in str(info.value)
    assert info.value.retryable

    lease = Lease(session_key=KEY, owner="runtime-a", expires_at=START, head_version=0)
    calls: list[tuple[str, Callable[[], object]]] = [
        ("get_session", lambda: registry.get_session(KEY)),
        ("get_turn_result", lambda: registry.get_turn_result(KEY, 1)),
        ("add_failed_turn_cost", lambda: registry.add_failed_turn_cost(KEY, 0.5)),
        (
            "keep_unfinished_session",
            lambda: registry.keep_unfinished_session(lease, "sdk-1", session_cost_usd=0.0),
        ),
        ("record_turn", lambda: registry.record_turn(lease, result=result(1))),
        ("renew_lease", lambda: registry.renew_lease(lease, duration_s=1)),
        ("release_lease", lambda: registry.release_lease(lease)),
    ]
    for operation, call in calls:
        with pytest.raises(StorageError) as info:
            call()
        assert info.value.operation == f"registry.{operation}"


def test_an_unreachable_endpoint_is_a_storage_error(aws: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )
    registry = SessionRegistry(dynamodb=dynamodb, table=aws.resources.table)
    with pytest.raises(StorageError) as info:
        registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    assert info.value.operation == "registry.acquire_lease"
    assert info.value.error_code == "EndpointConnectionError"
    with pytest.raises(StorageError) as info:
        registry.get_turn_result(KEY, 1)
    assert info.value.operation == "registry.get_turn_result"


def test_record_turn_answers_with_the_result_that_counts(registry: SessionRegistry) -> None:
    """The first run of an update to be recorded wins; a later run gets that answer back."""
    first = registry.acquire_lease(KEY, owner="a", duration_s=60)
    winner = result(7, text="first answer")
    assert registry.record_turn(first, result=winner) is winner
    assert registry.record_turn(first, result=winner) is winner  # a retry of our own write
    registry.release_lease(first)
    second = registry.acquire_lease(KEY, owner="b", duration_s=60)
    counted = registry.record_turn(second, result=result(7, text="second answer"))
    assert counted.text == "first answer" and counted.replayed
    record = registry.get_session(KEY)
    assert record is not None and record.turns == 1
