"""Supergroups allowed as the listed groups they were, against a real DynamoDB endpoint (the
moto server): what a stranger's supergroup costs, and what a listed group's keeps."""

from __future__ import annotations

from typing import Any

from agentbot_testing import FakeClock
from session_core import DynamoTable
from telegram_producer._moved_chats import MovedChats

LISTED = frozenset({-4077})
SUPERGROUP, STRANGERS, BASIC_GROUP = -1001234567077, -1009876543210, -4099


def counted_reads(aws: Any) -> tuple[DynamoTable, list[str]]:
    dynamodb = aws.client("dynamodb")
    reads: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb.GetItem", lambda **_: reads.append("GetItem"))
    return DynamoTable(dynamodb=dynamodb, table=aws.resources.table), reads


def test_a_strangers_supergroup_costs_one_read_a_minute_and_a_basic_group_none(aws: Any) -> None:
    table, reads = counted_reads(aws)
    clock = FakeClock()
    moved = MovedChats(table, clock=clock)
    for _ in range(50):  # a flood from a supergroup the bot was added to
        assert not moved.allowed_as_moved("default", STRANGERS, LISTED)
    assert reads == ["GetItem"]
    clock.now += 61
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
