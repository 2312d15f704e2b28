"""The Telegram side's records in the registry's table, against a real DynamoDB endpoint (the
moto server): what a retried consumer, a redelivered update or a /usage choice leaves behind."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from agentbot_testing import CLOCK_START as START
from agentbot_testing import AwsFault, FakeClock, FaultProxy, sweep_expired_items
from botocore.config import Config
from session_core import DynamoTable, SessionKey, StorageError
from telegram_core import ChatSettings, DeliveryLog, GroupMessage, UpdateDedup
from telegram_core._update_dedup import TRACKING_MARGIN_S

DAY = 86_400
KEY = SessionKey(tenant="acme", chat_id=-100123, thread_id=7)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def table(aws: Any, clock: FakeClock) -> DynamoTable:
    return DynamoTable(dynamodb=aws.dynamodb, table=aws.resources.table, clock=clock)


@pytest.fixture
def deliveries(table: DynamoTable) -> DeliveryLog:
    return DeliveryLog(table)


@pytest.fixture
def dedup(table: DynamoTable) -> UpdateDedup:
    return UpdateDedup(table)


def expires(aws: Any, pk: str, sk: str) -> int:
    item = aws.dynamodb.get_item(
        TableName=aws.resources.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
    )["Item"]
    return int(item["expires_at"]["N"])


def test_delivery_records_accumulate_per_update(deliveries: DeliveryLog) -> None:
    assert deliveries.delivered_chunks(KEY, 9) == {}
    deliveries.record_delivered_chunk(KEY, 9, 0, 501)
    deliveries.record_delivered_chunk(KEY, 9, 1, 502)
    deliveries.record_delivered_chunk(KEY, 10, 0, 601)
    deliveries.record_delivered_chunk(KEY, 9, 1, 502)  # a retried send records the same again

    assert deliveries.delivered_chunks(KEY, 9) == {0: 501, 1: 502}
    assert deliveries.delivered_chunks(KEY, 10) == {0: 601}
    # Notices share the delivery item but are not chunks.
    assert deliveries.notice_sent(KEY, 9, "busy")
    assert deliveries.delivered_chunks(KEY, 9) == {0: 501, 1: 502}
    with pytest.raises(ValueError, match="chunk index"):
        deliveries.record_delivered_chunk(KEY, 9, -1, 503)


def test_halves_of_a_too_long_chunk_are_recorded_apart_from_the_chunks(deliveries: DeliveryLog) -> None:
    """A rolling deploy: a consumer that predates halves reads the chunks as before (it would
    choke on a ``chunk_`` name that is not a number); one that knows them reads an older record
    as no halves sent."""
    deliveries.record_delivered_chunk(KEY, 9, 0, 501)
    assert deliveries.halves_sent(KEY, 9, 1) == {}  # an older consumer's record
    deliveries.record_half_sent(KEY, 9, 1, 1, 502)
    deliveries.record_half_sent(KEY, 9, 12, 1, 900)  # another chunk's, not chunk 1's
    assert deliveries.halves_sent(KEY, 9, 1) == {1: 502}
    assert deliveries.halves_sent(KEY, 10, 1) == {}
    assert deliveries.delivered_chunks(KEY, 9) == {0: 501}  # what an older consumer reads too
    deliveries.record_half_sent(KEY, 9, 1, 2, 503)
    deliveries.record_delivered_chunk(KEY, 9, 1, 503)
    assert deliveries.delivered_chunks(KEY, 9) == {0: 501, 1: 503}


def test_a_notice_is_sent_once_per_update_and_kind(deliveries: DeliveryLog) -> None:
    assert deliveries.notice_sent(KEY, 9, "busy") is True
    assert deliveries.notice_sent(KEY, 9, "busy") is False
    assert deliveries.notice_sent(KEY, 9, "busy") is False
    assert deliveries.notice_sent(KEY, 9, "model_error") is True
    assert deliveries.notice_sent(KEY, 10, "busy") is True
    with pytest.raises(ValueError, match="notice kind"):
        deliveries.notice_sent(KEY, 9, "../x")


def test_update_dedup_is_durable_and_per_tenant(aws: Any, dedup: UpdateDedup) -> None:
    assert dedup.update_seen("acme", 123456) is False
    dedup.mark_update_seen("acme", 123456)
    dedup.mark_update_seen("acme", 123456)  # a redelivery marking again is fine
    assert dedup.update_seen("acme", 123456) is True
    assert dedup.update_seen("other", 123456) is False
    assert dedup.update_seen("acme", 123457) is False
    # Another container (another object on the same table) sees the mark.
    fresh = UpdateDedup(DynamoTable(dynamodb=aws.dynamodb, table=aws.resources.table))
    assert fresh.update_seen("acme", 123456) is True
    with pytest.raises(ValueError, match="tenant"):
        dedup.update_seen("a|b", 1)
    with pytest.raises(ValueError, match="update_id"):
        dedup.update_seen("acme", -1)


def test_a_queued_group_message_is_kept_as_long_as_its_update_and_claimed_by_no_edit(
    aws: Any, table: DynamoTable, clock: FakeClock
) -> None:
    dedup = UpdateDedup(table)
    first = GroupMessage(chat_id=-1007, thread_id=3, message_id=39)
    # The first edit ever seen starts the tracking: messages sent before it may be unrecorded.
    assert dedup.claim_edited_message("acme", first, 49, sent_at=int(START) - 5) == (
        "sent before edits were tracked"
    )
    answered = GroupMessage(chat_id=-1007, thread_id=3, message_id=40)
    dedup.mark_update_seen("acme", 50, answered=answered)
    pk = "message|acme|-1007|3|40"
    assert expires(aws, pk, "queued") == expires(aws, "update|acme|50", "seen") == int(START) + 25 * DAY
    sent_at = int(START) + TRACKING_MARGIN_S  # (the tracking starts that long after the first edit)
    assert dedup.claim_edited_message("acme", answered, 51, sent_at=sent_at - 1) == (
        "sent before edits were tracked"
    )
    assert dedup.claim_edited_message("acme", answered, 51, sent_at=sent_at) == "already queued"
    unanswered = GroupMessage(chat_id=-1007, thread_id=3, message_id=41)
    assert dedup.claim_edited_message("acme", unanswered, 52, sent_at=sent_at) == "claimed"
    assert dedup.claim_edited_message("acme", unanswered, 52, sent_at=sent_at) == "claimed"  # redelivery
    assert dedup.claim_edited_message("acme", unanswered, 53, sent_at=sent_at) == "already queued"
    assert dedup.claim_edited_message("acme", first, 54, sent_at=int(START) - 5) == (
        "sent before edits were tracked"
    )
    clock.now += 30 * DAY  # the mark outlives the records' retention: the cut never moves back
    sweep_expired_items(aws.dynamodb, aws.resources.table, clock.now)
    assert dedup.claim_edited_message("acme", first, 55, sent_at=int(START) - 5) == (
        "sent before edits were tracked"
    )
    assert dedup.claim_edited_message("other", unanswered, 56, sent_at=int(clock.now)) == (
        "sent before edits were tracked"  # each tenant's tracking starts with its first edit
    )


def test_the_usage_footer_is_off_until_set_and_expires_with_the_retention(
    aws: Any, table: DynamoTable, clock: FakeClock
) -> None:
    settings = ChatSettings(table)
    assert settings.usage_footer(KEY) is False
    settings.set_usage_footer(KEY, True)
    assert settings.usage_footer(KEY) is True
    assert expires(aws, f"session|{KEY.canonical}", "settings") == int(START) + 25 * DAY
    settings.set_usage_footer(KEY, False)
    assert settings.usage_footer(KEY) is False


def test_the_usage_footer_stays_on_while_the_chat_is_used_and_goes_with_its_history(
    aws: Any, table: DynamoTable, clock: FakeClock
) -> None:
    """/usage on lives as the chat's history does: SessionTtlDays after the chat's last answer
    (each reads it), not after the command (it went off in a chat used daily, on the day
    DynamoDB's TTL swept it; a chat quiet for longer kept it until then)."""
    settings = ChatSettings(table)
    settings.set_usage_footer(KEY, True)
    for _ in range(4):  # an answer every ten days
        clock.now += 10 * DAY
        sweep_expired_items(aws.dynamodb, aws.resources.table, clock.now)
        assert settings.usage_footer(KEY) is True
    clock.now += 26 * DAY  # quiet
    assert settings.usage_footer(KEY) is False


def test_the_usage_footer_stays_on_when_dynamodb_refuses_to_refresh_its_expiry(
    aws: Any, table: DynamoTable, clock: FakeClock
) -> None:
    """Reading /usage on also moves its expiry (a write): DynamoDB throttling that write
    must not take the footer off the answer being written, nor fail a /usage that asks."""
    ChatSettings(table).set_usage_footer(KEY, True)
    clock.now += 10 * DAY  # its expiry is due a refresh
    throttled = AwsFault("dynamodb:UpdateItem", status=400, code="ProvisionedThroughputExceededException")
    with FaultProxy(aws.endpoint, services=aws.endpoints.services, faults=[throttled]) as proxy:
        through_proxy = DynamoTable(dynamodb=proxy.client("dynamodb"), table=aws.resources.table, clock=clock)
        assert ChatSettings(through_proxy).usage_footer(KEY) is True
        assert proxy.failed, "the refresh was not tried"


def test_every_record_expires_after_the_retention_and_use_refreshes_it(aws: Any, clock: FakeClock) -> None:
    table = DynamoTable(dynamodb=aws.dynamodb, table=aws.resources.table, retention_days=3, clock=clock)
    deliveries, dedup = DeliveryLog(table), UpdateDedup(table)
    pk = f"session|{KEY.canonical}"

    deliveries.record_delivered_chunk(KEY, 1, 0, 11)
    dedup.mark_update_seen("acme", 1)
    first = int(START) + 3 * DAY
    assert expires(aws, pk, "delivery|1") == first
    assert expires(aws, "update|acme|1", "seen") == first

    clock.now += 2 * DAY  # the chat is used again two days later
    deliveries.record_delivered_chunk(KEY, 1, 1, 12)
    dedup.mark_update_seen("acme", 1)
    assert expires(aws, pk, "delivery|1") == first + 2 * DAY
    assert expires(aws, "update|acme|1", "seen") == first + 2 * DAY


def test_a_missing_table_is_a_storage_error_naming_operation_and_table(aws: Any) -> None:
    table = DynamoTable(dynamodb=aws.dynamodb, table="no-such-table")
    deliveries, dedup, settings = DeliveryLog(table), UpdateDedup(table), ChatSettings(table)
    calls: list[tuple[str, Callable[[], object]]] = [
        ("update_seen", lambda: dedup.update_seen("acme", 1)),
        ("mark_update_seen", lambda: dedup.mark_update_seen("acme", 1)),
        ("delivered_chunks", lambda: deliveries.delivered_chunks(KEY, 1)),
        ("record_delivered_chunk", lambda: deliveries.record_delivered_chunk(KEY, 1, 0, 1)),
        ("notice_sent", lambda: deliveries.notice_sent(KEY, 1, "busy")),
        ("usage_footer", lambda: settings.usage_footer(KEY)),
        ("set_usage_footer", lambda: settings.set_usage_footer(KEY, True)),
    ]
    for operation, call in calls:
        with pytest.raises(StorageError) as info:
            call()
        assert info.value.operation == f"registry.{operation}"
        assert info.value.error_code == "ResourceNotFoundException"
        assert "no-such-table" in str(info.value)


def test_an_unreachable_endpoint_is_a_storage_error(aws: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )
    dedup = UpdateDedup(DynamoTable(dynamodb=dynamodb, table=aws.resources.table))
    with pytest.raises(StorageError) as info:
        dedup.update_seen("acme", 1)
    assert info.value.operation == "registry.update_seen"
    assert info.value.error_code == "EndpointConnectionError"


def test_the_mark_of_a_producer_that_recorded_fewer_kinds_of_messages_is_not_trusted(
    aws: Any, table: DynamoTable
) -> None:
    """A producer before this one marked when it began recording queued messages, but not the
    parts of pastes or the stops it answered: edits of those could bring a second answer. Its
    mark is not taken: the tracking starts anew with this producer's first edit."""
    aws.dynamodb.put_item(
        TableName=aws.resources.table,
        Item={
            "pk": {"S": "edits|acme"},
            "sk": {"S": "tracked_since"},
            "since": {"N": str(int(START) - 3600)},
        },
    )
    dedup = UpdateDedup(table)
    part = GroupMessage(chat_id=-1007, thread_id=3, message_id=90)
    assert (
        dedup.claim_edited_message("acme", part, 91, sent_at=int(START)) == "sent before edits were tracked"
    )
