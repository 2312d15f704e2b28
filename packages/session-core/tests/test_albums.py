"""The parts of a photo album kept for one turn (AlbumParts), against moto over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from agentbot_testing import FakeClock
from session_core import AlbumParts, StorageError

SESSION = "default/501/0"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def albums(aws: Any, clock: FakeClock) -> AlbumParts:
    return AlbumParts(dynamodb=aws.dynamodb, table=aws.resources.table, retention_days=1, clock=clock)


def test_the_first_addressed_part_starts_the_album_and_the_rest_join_it(albums: AlbumParts) -> None:
    assert albums.record(SESSION, "g1", 11, "not addressed", addressed=False) == "joins"
    assert albums.record(SESSION, "g1", 12, "addressed", addressed=True) == "starts"
    assert albums.record(SESSION, "g1", 13, "also addressed", addressed=True) == "joins"
    # Telegram sends an update again when the webhook failed: the part that starts still does.
    assert albums.record(SESSION, "g1", 12, "addressed", addressed=True) == "starts"


def test_gathering_waits_for_a_quiet_moment_then_takes_every_part_once(
    albums: AlbumParts, clock: FakeClock
) -> None:
    albums.record(SESSION, "g2", 21, "first", addressed=True)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # a part arrives during the first wait
        waits.append(seconds)
        if len(waits) == 1:
            albums.record(SESSION, "g2", 22, "second", addressed=True)
        clock.now += seconds

    assert albums.gather(SESSION, "g2", quiet_s=1.0, sleep=sleep).parts == ["first", "second"]
    assert sum(waits) >= 1.0
    # Gathered: a later part is a message of its own, and asking again gives the same parts.
    assert albums.record(SESSION, "g2", 23, "third", addressed=True) == "late"
    assert albums.gather(SESSION, "g2", quiet_s=1.0, sleep=sleep).parts == ["first", "second"]


def test_an_album_never_recorded_gathers_nothing(albums: AlbumParts) -> None:
    assert albums.gather(SESSION, "missing", sleep=lambda _: None).parts == []


def test_albums_of_other_chats_do_not_mix(albums: AlbumParts, clock: FakeClock) -> None:
    albums.record(SESSION, "same-id", 31, "mine", addressed=True)
    albums.record("default/777/0", "same-id", 32, "theirs", addressed=True)
    clock.now += 5

    assert albums.gather(SESSION, "same-id", sleep=lambda _: None).parts == ["mine"]


def test_a_part_recorded_again_after_its_album_was_gathered_still_joins(
    albums: AlbumParts, clock: FakeClock
) -> None:
    """Telegram sends an update again when it got no answer from the webhook: a part the
    album's turn took is not a late message of its own (it would be answered twice)."""
    albums.record(SESSION, "g3", 41, "first", addressed=True)
    albums.record(SESSION, "g3", 42, "second", addressed=True)
    clock.now += 5
    assert albums.gather(SESSION, "g3", sleep=lambda _: None).parts == ["first", "second"]

    assert albums.record(SESSION, "g3", 42, "second", addressed=True) == "joins"
    assert albums.record(SESSION, "g3", 41, "first", addressed=True) == "joins"
    assert albums.record(SESSION, "g3", 43, "third", addressed=True) == "late"


def test_an_album_whose_parts_filled_its_item_can_still_be_gathered(
    albums: AlbumParts, clock: FakeClock
) -> None:
    """An item holds at most 400 KB: the part that does not fit is refused (the producer queues
    it on its own), and the parts that did must still be answered, not fail for good."""
    kept: list[str] = []
    sizes = [4000] * 120 + [1000, 500, 250, 120, 60, 30, 15, 8, 4, 2] + [1] * 150
    for update_id, size in enumerate(sizes):
        part = f"{update_id:>4}" + "x" * size
        try:
            albums.record(SESSION, "big", 874_000_000 + update_id, part, addressed=True)
        except StorageError:
            continue
        kept.append(part)
    assert kept[-1] != part  # the item is full: even the smallest part did not fit
    clock.now += 5

    gathered = albums.gather(SESSION, "big", sleep=lambda _: None).parts
    # moto may keep a part whose write it refused (its UpdateItem is not atomic near the limit)
    assert [part for part in gathered if part in kept] == kept
    assert albums.gather(SESSION, "big", sleep=lambda _: None).parts == gathered  # a retried turn
