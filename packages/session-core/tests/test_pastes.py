"""The parts of a long text Telegram's apps split, kept for one turn (PasteParts), against moto
over HTTP. Each plain text message is one UpdateItem on its sender's small item, whatever it
turns out to be; a part of a paste is one more on that paste's item."""

from __future__ import annotations

from typing import Any

import pytest
from agentbot_testing import FakeClock
from session_core import PasteParts, StorageError

SESSION = "default/501/0"
ALICE = 7


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pastes(aws: Any, clock: FakeClock) -> PasteParts:
    return PasteParts(dynamodb=aws.dynamodb, table=aws.resources.table, retention_days=1, clock=clock)


def _gather(pastes: PasteParts, starter: int) -> list[str]:
    return pastes.gather(SESSION, ALICE, starter=starter, sleep=lambda _: None)


def test_a_long_part_starts_a_paste_and_the_parts_after_it_join_until_a_short_one(
    pastes: PasteParts, clock: FakeClock
) -> None:
    assert pastes.record(SESSION, ALICE, 11, "one", near_limit=True, addressed=True) == "starts"
    clock.now += 1
    assert pastes.record(SESSION, ALICE, 12, "two", near_limit=True, addressed=True) == "joins"
    clock.now += 1
    assert pastes.record(SESSION, ALICE, 13, "three", near_limit=False, addressed=True) == "joins"
    # The short part was the last: the next message is a message of its own.
    assert pastes.record(SESSION, ALICE, 14, "thanks", near_limit=False, addressed=True) == "alone"
    assert _gather(pastes, 11) == ["one", "two", "three"]


def test_a_short_message_with_no_paste_open_is_alone_and_writes_nothing(pastes: PasteParts, aws: Any) -> None:
    assert pastes.record(SESSION, ALICE, 21, "hi", near_limit=False, addressed=True) == "alone"
    assert _gather(pastes, 21) == []


def test_a_part_too_long_after_the_last_long_one_is_no_part_of_it(
    pastes: PasteParts, clock: FakeClock
) -> None:
    pastes.record(SESSION, ALICE, 31, "long", near_limit=True, addressed=True)
    clock.now += 60  # long after: not the app sending the rest of a split text
    assert pastes.record(SESSION, ALICE, 32, "later", near_limit=False, addressed=True) == "alone"


def test_in_a_group_a_part_not_addressed_joins_but_never_starts(pastes: PasteParts, clock: FakeClock) -> None:
    assert pastes.record(SESSION, ALICE, 41, "long", near_limit=True, addressed=False) == "alone"
    assert pastes.record(SESSION, ALICE, 42, "start", near_limit=True, addressed=True) == "starts"
    assert pastes.record(SESSION, ALICE, 43, "end", near_limit=False, addressed=False) == "joins"
    assert _gather(pastes, 42) == ["start", "end"]


def test_senders_and_chats_do_not_mix(pastes: PasteParts) -> None:
    pastes.record(SESSION, ALICE, 51, "alice", near_limit=True, addressed=True)
    assert pastes.record(SESSION, 8, 52, "bob", near_limit=False, addressed=True) == "alone"
    assert pastes.record("default/777/0", ALICE, 53, "elsewhere", near_limit=False, addressed=True) == "alone"


def test_gathering_waits_while_the_last_part_was_long_then_a_later_part_is_alone(
    pastes: PasteParts, clock: FakeClock
) -> None:
    pastes.record(SESSION, ALICE, 61, "first", near_limit=True, addressed=True)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the app sends the last part during the first wait
        waits.append(seconds)
        if len(waits) == 1:
            pastes.record(SESSION, ALICE, 62, "second", near_limit=False, addressed=True)
        clock.now += seconds

    assert pastes.gather(SESSION, ALICE, starter=61, sleep=sleep) == ["first", "second"]
    assert pastes.record(SESSION, ALICE, 63, "third", near_limit=False, addressed=True) == "alone"
    # Asked again (a retried turn): the same parts.
    assert _gather(pastes, 61) == ["first", "second"]


def test_a_long_last_part_is_waited_for_at_most_the_cap(pastes: PasteParts, clock: FakeClock) -> None:
    pastes.record(SESSION, ALICE, 71, "first", near_limit=True, addressed=True)
    began = clock.now
    update_ids = iter(range(72, 200))

    def sleep(seconds: float) -> None:  # a long part keeps coming: the turn still starts
        clock.now += seconds
        pastes.record(SESSION, ALICE, next(update_ids), "more", near_limit=True, addressed=True)

    parts = pastes.gather(SESSION, ALICE, starter=71, wait_s=10.0, sleep=sleep)
    assert parts[0] == "first" and clock.now - began <= 10.5


def test_a_part_recorded_again_changes_nothing(pastes: PasteParts, clock: FakeClock) -> None:
    """Telegram sends an update again when the webhook's answer was lost."""
    pastes.record(SESSION, ALICE, 81, "first", near_limit=True, addressed=True)
    pastes.record(SESSION, ALICE, 82, "last", near_limit=False, addressed=True)
    assert pastes.record(SESSION, ALICE, 82, "last", near_limit=False, addressed=True) == "joins"
    clock.now += 30
    assert pastes.record(SESSION, ALICE, 81, "first", near_limit=True, addressed=True) == "starts"
    assert _gather(pastes, 81) == ["first", "last"]
    assert pastes.record(SESSION, ALICE, 82, "last", near_limit=False, addressed=True) == "joins"
    assert pastes.record(SESSION, ALICE, 81, "first", near_limit=True, addressed=True) == "joins"


def test_the_next_paste_of_the_sender_starts_afresh_and_each_keeps_its_parts_for_its_retries(
    pastes: PasteParts, clock: FakeClock, aws: Any
) -> None:
    pastes.record(SESSION, ALICE, 91, "a1", near_limit=True, addressed=True)
    pastes.record(SESSION, ALICE, 92, "a2", near_limit=False, addressed=True)
    assert _gather(pastes, 91) == ["a1", "a2"]
    clock.now += 30
    assert pastes.record(SESSION, ALICE, 95, "b1", near_limit=True, addressed=True) == "starts"
    pastes.record(SESSION, ALICE, 96, "b2", near_limit=False, addressed=True)
    assert _gather(pastes, 95) == ["b1", "b2"]
    assert _gather(pastes, 91) == ["a1", "a2"]  # each paste's parts are an item of their own
    clock.now += 30
    pastes.record(SESSION, ALICE, 97, "c1", near_limit=True, addressed=True)
    pastes.record(SESSION, ALICE, 98, "c2", near_limit=False, addressed=True)
    assert _gather(pastes, 97) == ["c1", "c2"]
    assert _gather(pastes, 95) == ["b1", "b2"]


def test_a_paste_whose_starter_was_dropped_can_be_forgotten(pastes: PasteParts, clock: FakeClock) -> None:
    """A starter the producer could not queue (rate limited) must not keep its sender's next
    pastes from starting."""
    pastes.record(SESSION, ALICE, 101, "dropped", near_limit=True, addressed=True)
    pastes.forget(SESSION, ALICE, starter=101)
    clock.now += 1
    assert pastes.record(SESSION, ALICE, 102, "later", near_limit=False, addressed=True) == "alone"
    assert pastes.record(SESSION, ALICE, 103, "new", near_limit=True, addressed=True) == "starts"


def test_a_paste_never_answered_does_not_keep_the_senders_next_paste_from_starting(
    pastes: PasteParts, clock: FakeClock
) -> None:
    """Its first part was never queued (too large for the queue, the producer crashed after
    writing it): the next paste, minutes later, is still one turn, not a turn per part."""
    pastes.record(SESSION, ALICE, 111, "lost", near_limit=True, addressed=True)
    pastes.record(SESSION, ALICE, 112, "lost too", near_limit=False, addressed=True)
    clock.now += 300
    assert pastes.record(SESSION, ALICE, 115, "b1", near_limit=True, addressed=True) == "starts"
    assert pastes.record(SESSION, ALICE, 116, "b2", near_limit=False, addressed=True) == "joins"
    assert _gather(pastes, 115) == ["b1", "b2"]


def test_a_paste_whose_turn_waits_behind_another_keeps_its_parts_when_the_next_paste_starts(
    pastes: PasteParts, clock: FakeClock
) -> None:
    """The chat's queue is busy with a long turn: the first paste is answered with its own
    parts, the second one with its own, each once."""
    pastes.record(SESSION, ALICE, 121, "a1", near_limit=True, addressed=True)
    pastes.record(SESSION, ALICE, 122, "a2", near_limit=False, addressed=True)
    clock.now += 30
    assert pastes.record(SESSION, ALICE, 125, "b1", near_limit=True, addressed=True) == "starts"
    # Telegram sends the first paste's parts again (its answer to the webhook was lost).
    assert pastes.record(SESSION, ALICE, 121, "a1", near_limit=True, addressed=True) == "starts"
    assert pastes.record(SESSION, ALICE, 126, "b2", near_limit=False, addressed=True) == "joins"
    assert _gather(pastes, 121) == ["a1", "a2"]
    assert _gather(pastes, 121) == ["a1", "a2"]  # a retried turn
    assert _gather(pastes, 125) == ["b1", "b2"]
    assert _gather(pastes, 125) == ["b1", "b2"]


def test_a_paste_that_filled_its_item_does_not_keep_the_senders_next_paste_from_being_one(
    pastes: PasteParts, clock: FakeClock
) -> None:
    """DynamoDB holds 400 KB an item: a paste of a few dozen parts (8 KB each in Cyrillic)
    fills it, and the parts a retried turn would need stay after it is answered. The next
    paste must still find room, not be answered part by part until the item expires."""
    part = "ж" * 4000
    update_ids = iter(range(1000, 2000))
    first = next(update_ids)
    pastes.record(SESSION, ALICE, first, part, near_limit=True, addressed=True)
    for _ in range(60):  # until the item is full: the parts past that are answered on their own
        clock.now += 0.2
        try:
            pastes.record(SESSION, ALICE, next(update_ids), part, near_limit=True, addressed=True)
        except StorageError:
            break
    else:
        pytest.fail("the item never filled up")
    clock.now += 10
    assert len(_gather(pastes, first)) > 40
    clock.now += 300

    second = next(update_ids)
    assert pastes.record(SESSION, ALICE, second, part, near_limit=True, addressed=True) == "starts"
    assert pastes.record(SESSION, ALICE, next(update_ids), "end", near_limit=False, addressed=True) == "joins"
    assert _gather(pastes, second) == [part, "end"]


def test_a_first_part_telegram_sends_again_later_still_waits_for_the_rest(
    pastes: PasteParts, clock: FakeClock
) -> None:
    """The webhook failed for the first part (the queue was down): Telegram holds the chat's
    next updates until it succeeds, seconds or minutes later, so the rest comes after it."""
    pastes.record(SESSION, ALICE, 131, "first", near_limit=True, addressed=True)
    clock.now += 30
    assert pastes.record(SESSION, ALICE, 131, "first", near_limit=True, addressed=True) == "starts"
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the rest comes while its turn starts
        waits.append(seconds)
        if len(waits) == 1:
            assert pastes.record(SESSION, ALICE, 132, "second", near_limit=False, addressed=True) == "joins"
        clock.now += seconds

    assert pastes.gather(SESSION, ALICE, starter=131, sleep=sleep) == ["first", "second"]
