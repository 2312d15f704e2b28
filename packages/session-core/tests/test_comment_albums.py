"""The messages forwarded with a comment, taken by the comment's turn (CommentAlbums), against
moto over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from agentbot_testing import FakeClock
from session_core import (
    TURN_VERSION,
    CommentAlbums,
    GatheredAlbum,
    LiveTurns,
    SessionKey,
    SessionRegistry,
    TurnResult,
)

SESSION = "default/501/0"


def _never(_: list[str]) -> bool:
    return False


def _always(_: list[str]) -> bool:
    return True


def _no_wait(_: float) -> None:
    pass


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def dynamodb(aws: Any) -> Any:
    return aws.client("dynamodb")


@pytest.fixture
def albums(aws: Any, dynamodb: Any, clock: FakeClock) -> CommentAlbums:
    return CommentAlbums(dynamodb=dynamodb, table=aws.resources.table, retention_days=1, clock=clock)


def test_the_comment_sent_before_an_album_takes_it_and_its_own_turn_answers_nothing(
    albums: CommentAlbums, clock: FakeClock
) -> None:
    albums.record(SESSION, "f1", 51, "forward one", addressed=True)
    albums.record(SESSION, "f1", 52, "forward two", addressed=True)
    clock.now += 5
    seen: list[list[str]] = []

    def accepts(parts: list[str]) -> bool:
        seen.append(parts)
        return True

    taken = albums.gather_for_comment(SESSION, ["f0", "f1"], comment=50, accepts=accepts, sleep=_no_wait)

    assert taken == ["forward one", "forward two"] and seen == [taken]
    assert albums.gather(SESSION, "f1", sleep=_no_wait).comment == 50  # its starter's turn
    # asked again (a retried turn), the same parts, whatever ``accepts`` says now
    again = albums.gather_for_comment(SESSION, ["f0", "f1"], comment=50, accepts=_never, sleep=_no_wait)
    assert again == taken
    assert albums.gather_for_comment(SESSION, ["f1"], comment=49, accepts=_always, sleep=_no_wait) == []
    assert albums.record(SESSION, "f1", 53, "forward three", addressed=True) == "late"


def test_a_comment_takes_no_album_it_does_not_accept_or_its_own_turn_took(
    albums: CommentAlbums, clock: FakeClock
) -> None:
    albums.record(SESSION, "f2", 61, "someone else's", addressed=True)
    albums.record(SESSION, "f3", 71, "answered already", addressed=True)
    clock.now += 5
    assert albums.gather(SESSION, "f3", sleep=_no_wait) == GatheredAlbum(parts=["answered already"])

    assert albums.gather_for_comment(SESSION, ["f2"], comment=60, accepts=_never, sleep=_no_wait) == []
    assert albums.gather_for_comment(SESSION, ["f3"], comment=70, accepts=_always, sleep=_no_wait) == []
    # refused, the album is still its own turn's
    assert albums.gather(SESSION, "f2", sleep=_no_wait) == GatheredAlbum(parts=["someone else's"])


def test_a_text_no_forward_follows_costs_one_request(albums: CommentAlbums, dynamodb: Any) -> None:
    """Every plain text may be a comment: looking for its forwards must stay cheap."""
    requests: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: requests.append(model.name))

    assert albums.gather_for_comment(SESSION, ["g0", "g1"], comment=80, accepts=_always, sleep=_no_wait) == []
    assert requests == ["BatchGetItem"]


def test_a_retried_comment_knows_whether_an_earlier_try_went_on_to_its_turn(
    aws: Any, albums: CommentAlbums, dynamodb: Any
) -> None:
    """Went on: the consumer expected the turn before invoking the runtime, or the runtime
    saved it (its live item replaced since by a later turn's). Asking costs one request, and
    only retries ask."""
    key = SessionKey.parse(SESSION)
    live = LiveTurns(dynamodb=dynamodb, table=aws.resources.table)
    requests: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: requests.append(model.name))
    assert not albums.turn_went_ahead(key, 90)
    assert requests == ["BatchGetItem"]

    live.expect(key, 89)  # the turn before it
    live.end(key, 89)
    assert not albums.turn_went_ahead(key, 90)
    live.expect(key, 90)
    assert albums.turn_went_ahead(key, 90)

    registry = SessionRegistry(dynamodb=dynamodb, table=aws.resources.table)
    lease = registry.acquire_lease(key, owner="runtime", duration_s=60)
    registry.record_turn(lease, result=TurnResult(version=TURN_VERSION, session_key=SESSION, turn_id=91))
    live.end(key, 90)
    live.expect(key, 92)
    assert albums.turn_went_ahead(key, 91)
