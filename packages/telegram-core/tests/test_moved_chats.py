"""Supergroups allowed as the listed groups they were, against a real DynamoDB endpoint (the
moto server): what a stranger's supergroup costs, and what a listed group's keeps."""

from __future__ import annotations

from typing import Any

from agentbot_testing import FakeClock
from session_core import DynamoTable
from telegram_core import MovedChats

LISTED = frozenset({-4077})
SUPERGROUP, STRANGERS, BASIC_GROUP = -1001234567077, -1009876543210, -4099


def counted_reads(aws: Any) -> tuple[DynamoTable, list[str]]:
    dynamodb = aws.client("dynamodb")
    reads: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb.GetItem", lambda **_: reads.append("GetItem"))
    return DynamoTable(dynamodb=dynamodb, table=aws.resources.table), reads


def test_a_strangers_supergroup_costs_a_read_every_few_seconds_and_a_basic_group_none(aws: Any) -> None:
    table, reads = counted_reads(aws)
    clock = FakeClock()
    moved = MovedChats(table, clock=clock)
    for _ in range(50):  # a flood from a supergroup the bot was added to
        assert not moved.allowed_as_moved("default", STRANGERS, LISTED)
    assert reads == ["GetItem"]
    clock.now += 6
    assert not moved.allowed_as_moved("default", STRANGERS, LISTED)
    assert not moved.allowed_as_moved("default", BASIC_GROUP, LISTED)  # never a move's target
    assert reads == ["GetItem"] * 2


def test_a_recorded_move_allows_the_supergroup_only_while_its_group_is_listed(aws: Any) -> None:
    table, _ = counted_reads(aws)
    MovedChats(table).record("default", SUPERGROUP, -4077)
    elsewhere = MovedChats(table)  # another container
    assert elsewhere.allowed_as_moved("default", SUPERGROUP, LISTED)
    assert not elsewhere.allowed_as_moved("default", SUPERGROUP, frozenset({-4078}))
    assert not elsewhere.allowed_as_moved("acme", SUPERGROUP, LISTED)  # another tenant's bot


def test_a_move_recorded_elsewhere_is_seen_within_seconds_by_a_container_that_looked_before(
    aws: Any,
) -> None:
    """A container that looked the supergroup up just before another recorded its move (the
    supergroup's messages and its move reach the webhook at once) sees the move in seconds, not
    a minute; a stranger's supergroup still costs a bounded number of reads a minute."""
    table, reads = counted_reads(aws)
    clock = FakeClock()
    raced = MovedChats(table, clock=clock)
    assert not raced.allowed_as_moved("default", SUPERGROUP, LISTED)
    MovedChats(table).record("default", SUPERGROUP, -4077)
    clock.now += 10
    assert raced.allowed_as_moved("default", SUPERGROUP, LISTED)
    for _ in range(60):  # a minute of a stranger's flood, a message a second
        raced.allowed_as_moved("default", STRANGERS, LISTED)
        clock.now += 1
    assert reads.count("GetItem") <= 2 + 60 // 5
