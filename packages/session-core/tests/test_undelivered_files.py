"""Files of an answer that never reached the user, kept with the session for the next turn's
agent (against the moto server): told once, by a turn whose prompt reaches the model."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from session_core import (
    TURN_VERSION,
    SessionKey,
    SessionRegistry,
    TurnResult,
    UnsentFile,
    session_item_pk,
    undelivered_files,
)
from session_core._registry_keys import META
from session_core._undelivered_files import LIST_TURN_ATTRIBUTE

KEY = SessionKey(tenant="acme", chat_id=501)
BIG = UnsentFile(file_name="archive.zip", reason="too_large")


@pytest.fixture
def registry(aws: Any) -> SessionRegistry:
    return SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)


def answer_turn(registry: SessionRegistry, turn_id: int, **fields: Any) -> None:
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    result = TurnResult(
        version=TURN_VERSION, session_key=KEY.canonical, turn_id=turn_id, session_id="sdk-1", **fields
    )
    registry.record_turn(lease, result=result)
    registry.release_lease(lease)


def kept(registry: SessionRegistry) -> Any:
    record = registry.get_session(KEY)
    assert record is not None
    return record.undelivered_files


def test_kept_until_a_turn_whose_agent_heard_of_them_is_recorded(registry: SessionRegistry) -> None:
    answer_turn(registry, 1)
    noted = undelivered_files(1, [BIG])
    assert noted is not None
    registry.keep_undelivered_files(KEY, noted)
    assert kept(registry) == noted  # read back from the table, as a new container reads it

    # stopped before it began: its prompt never reached the model, which was told nothing
    answer_turn(registry, 2, stopped=True, stopped_before_start=True)
    assert kept(registry) == noted

    answer_turn(registry, 3)
    assert kept(registry) is None


def test_new_forgets_the_files_of_the_old_conversation(registry: SessionRegistry) -> None:
    answer_turn(registry, 1)
    noted = undelivered_files(1, [BIG])
    assert noted is not None
    registry.keep_undelivered_files(KEY, noted)
    registry.start_new_session(KEY)
    assert kept(registry) is None


def test_a_list_written_late_does_not_come_back_in_the_conversation_begun_by_new(
    registry: SessionRegistry,
) -> None:
    """A stuck delivery of the old conversation's last answer writes its list after /new: the
    new conversation's agent has no answer it belongs to."""
    answer_turn(registry, 1)
    late = undelivered_files(1, [BIG])
    assert late is not None
    registry.start_new_session(KEY)
    registry.keep_undelivered_files(KEY, late)
    assert kept(registry) is None

    answer_turn(registry, 2)  # the new conversation's own list is kept
    own = undelivered_files(2, [UnsentFile(file_name="report.pdf", reason="too_large")])
    assert own is not None
    registry.keep_undelivered_files(KEY, own)
    assert kept(registry) == own


def test_ten_are_named_and_the_rest_counted(registry: SessionRegistry) -> None:
    many = [UnsentFile(file_name=f"part{n:02}.csv", reason="too_many") for n in range(14)]
    answer_turn(registry, 1)
    noted = undelivered_files(1, many, more=5)
    assert noted is not None
    registry.keep_undelivered_files(KEY, noted)
    named = kept(registry)
    assert [f.file_name for f in named.files] == [f"part{n:02}.csv" for n in range(10)]
    assert named.more == 4 + 5


def test_an_older_turns_list_written_late_does_not_replace_a_newer_ones(registry: SessionRegistry) -> None:
    """A stuck first delivery of turn 1 that wakes up after turn 2's answer was delivered."""
    answer_turn(registry, 1)
    answer_turn(registry, 2)
    newer = undelivered_files(2, [UnsentFile(file_name="report.pdf", reason="too_large")])
    assert newer is not None
    registry.keep_undelivered_files(KEY, newer)
    late = undelivered_files(1, [BIG])
    assert late is not None
    registry.keep_undelivered_files(KEY, late)
    assert kept(registry) == newer


def test_a_list_written_late_does_not_come_back_after_the_agent_was_told(registry: SessionRegistry) -> None:
    answer_turn(registry, 1)
    noted = undelivered_files(1, [BIG])
    assert noted is not None
    registry.keep_undelivered_files(KEY, noted)
    answer_turn(registry, 2)  # its agent was told of archive.zip
    registry.keep_undelivered_files(KEY, noted)  # turn 1's stuck first delivery, late
    assert kept(registry) is None

    # turn 2's own list is still kept for turn 3
    own = undelivered_files(2, [UnsentFile(file_name="report.pdf", reason="too_large")])
    assert own is not None
    registry.keep_undelivered_files(KEY, own)
    assert kept(registry) == own


def test_a_late_list_stays_stale_after_telegram_restarts_its_update_ids_lower(
    registry: SessionRegistry,
) -> None:
    """After a week without updates Telegram numbers the next update at random: a later turn's
    id may be lower than the last one's. Its own list is kept; the earlier turn's, written late
    by a stuck delivery, does not come back."""
    answer_turn(registry, 904_118)
    late = undelivered_files(904_118, [BIG])
    assert late is not None
    answer_turn(registry, 12_007)  # a week later; its agent was told whatever was kept
    registry.keep_undelivered_files(KEY, late)
    assert kept(registry) is None

    own = undelivered_files(12_007, [UnsentFile(file_name="report.pdf", reason="too_large")])
    assert own is not None
    registry.keep_undelivered_files(KEY, own)
    registry.keep_undelivered_files(KEY, late)
    assert kept(registry) == own


def test_a_later_try_that_delivered_it_all_forgets_its_own_turns_list_only(registry: SessionRegistry) -> None:
    """A dead-lettered answer's list, its record tried again and delivered in full: nothing
    was lost. Forgetting another turn's list would hide a loss that happened."""
    answer_turn(registry, 1)
    lost = undelivered_files(1, [], text_lost=True)
    assert lost is not None
    registry.keep_undelivered_files(KEY, lost)
    assert kept(registry) == lost  # the text's loss is read back too

    registry.forget_undelivered_files(KEY, 2)  # not its turn
    assert kept(registry) == lost
    registry.forget_undelivered_files(KEY, 1)
    assert kept(registry) is None
    registry.forget_undelivered_files(KEY, 1)  # again (a retry): nothing to forget, no error
    assert kept(registry) is None


def _unmarked(aws: Any, key: SessionKey) -> None:
    """The list as a consumer kept it before lists were marked with their turn on the item
    (``undelivered_list_turn_id``): its turn is only inside the list."""
    aws.dynamodb.update_item(
        TableName=aws.resources.table,
        Key={"pk": {"S": session_item_pk(key)}, "sk": {"S": META}},
        UpdateExpression=f"REMOVE {LIST_TURN_ATTRIBUTE}",
    )


def test_a_list_kept_before_lists_were_marked_is_forgotten_by_its_own_turns_later_try_only(
    registry: SessionRegistry, aws: Any
) -> None:
    """A dead letter of the last release, redriven after the upgrade (`dlq redrive`) and
    delivered in full: its list must go, or the agent is told of files the user has. Another
    turn's such list stays: the loss it names happened."""
    answer_turn(registry, 1)
    noted = undelivered_files(1, [BIG])
    assert noted is not None
    registry.keep_undelivered_files(KEY, noted)
    _unmarked(aws, KEY)

    registry.forget_undelivered_files(KEY, 2)  # not its turn
    assert kept(registry) == noted
    registry.forget_undelivered_files(KEY, 1)
    assert kept(registry) is None


class _LastReleasesList(msgspec.Struct, frozen=True, kw_only=True):
    """UndeliveredFiles as the release before ``text_lost`` decodes it (unknown fields ignored)."""

    turn_id: int
    files: tuple[UnsentFile, ...] = ()
    more: int = 0


def _read_by_the_last_release(aws: Any) -> _LastReleasesList | None:
    """What a runtime of the last release reads (its ``read_undelivered``): a binary attribute,
    decoded; anything else is no list. What it reads, it tells the agent as files not sent."""
    item = aws.dynamodb.get_item(
        TableName=aws.resources.table, Key={"pk": {"S": session_item_pk(KEY)}, "sk": {"S": META}}
    )["Item"]
    value = item.get("undelivered_files")
    if not isinstance(value, dict) or "B" not in value:
        return None
    return msgspec.json.decode(value["B"], type=_LastReleasesList)


def test_a_lost_text_alone_is_passed_over_by_the_last_releases_runtime(
    registry: SessionRegistry, aws: Any
) -> None:
    """During a rolling deploy a runtime of the last release may run the next turn: it knows no
    lost text, and read such a list as files not sent, naming none (an empty "these files did
    not reach the user" note). It says nothing instead, as it did of a lost text; the new one
    reads it, and a list with files still names them to either."""
    answer_turn(registry, 1)
    text_only = undelivered_files(1, [], text_lost=True)
    assert text_only is not None
    registry.keep_undelivered_files(KEY, text_only)
    assert _read_by_the_last_release(aws) is None
    assert kept(registry) == text_only

    with_files = undelivered_files(1, [BIG], text_lost=True)
    assert with_files is not None
    registry.keep_undelivered_files(KEY, with_files)
    assert _read_by_the_last_release(aws) == _LastReleasesList(turn_id=1, files=(BIG,))
    assert kept(registry) == with_files
