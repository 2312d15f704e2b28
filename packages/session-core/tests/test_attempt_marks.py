"""The marks of a message's try before last (AttemptMarks), against moto over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from agentbot_testing import FakeClock
from session_core import AttemptMarks, SessionKey, StorageError

KEY = SessionKey(tenant="default", chat_id=-100501, thread_id=7)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def marks(aws: Any, clock: FakeClock) -> AttemptMarks:
    return AttemptMarks(dynamodb=aws.dynamodb, table=aws.resources.table, retention_days=1, clock=clock)


def test_a_try_that_started_and_never_ended_is_found_and_one_that_ended_is_not(marks: AttemptMarks) -> None:
    assert not marks.left_unfinished(KEY, 41)
    marks.started(KEY, 41)
    assert marks.left_unfinished(KEY, 41)
    assert not marks.left_unfinished(KEY, 42)  # another update of the chat
    assert not marks.left_unfinished(SessionKey(tenant="default", chat_id=-100501), 41)  # another topic
    marks.ended(KEY, 41)
    assert not marks.left_unfinished(KEY, 41)
    marks.ended(KEY, 41)  # ending twice changes nothing


def test_a_mark_lives_a_day_in_an_item_of_its_own(aws: Any, marks: AttemptMarks, clock: FakeClock) -> None:
    marks.started(KEY, 43)
    [item] = aws.dynamodb.scan(
        TableName=aws.resources.table,
        FilterExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"attempt|{KEY.canonical}|43"}},
    )["Items"]
    assert item["sk"] == {"S": "started"}
    assert int(item["expires_at"]["N"]) == int(clock.now) + 86_400


def test_a_table_that_fails_raises_storage_error_naming_the_verb(aws: Any) -> None:
    broken = AttemptMarks(dynamodb=aws.dynamodb, table="no-such-table")
    for verb in (broken.started, broken.ended, broken.left_unfinished):
        with pytest.raises(StorageError) as caught:
            verb(KEY, 1)
        assert caught.value.operation == f"attempt_marks.{verb.__name__}"
