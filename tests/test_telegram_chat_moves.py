"""A group upgraded to a supergroup keeps its conversation.

Telegram gives the supergroup a new chat id: the old group gets a service message naming the
new id, and the supergroup's first message names the old one. Before, the bot started from
nothing there: the history, the /usage choice and the day's spending stayed with the dead id.
Through the real stack: producer → moto FIFO → consumer → the real runtime (real CLI,
scripted model that says how many of the user's messages it was shown).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentbot_testing.telegram_support import BOT_USERNAME, update, webhook_event
from local_stack import ToolCall, last_user_text, sqs_lambda_event, tool_results, user_turns
from session_core import SessionKey
from sqs_consumer import DELIVERY_RESERVE_S

pytestmark = pytest.mark.slow
OLD, NEW = -4055, -1004055  # the group, and the supergroup it became


def responder(request: dict[str, Any]) -> Any:
    """The number of the user's messages shown and the last one's own text (after the line
    naming its sender in a group); ``slow ...`` first runs a tool for a few seconds."""
    text = last_user_text(request).rpartition("\n\n")[2]
    if text.startswith("slow") and not tool_results(request):
        return [ToolCall(name="Bash", input={"command": "python3 -c 'import time; time.sleep(4)'"})]
    return f"turns={user_turns(request)} last={text}"


@pytest.fixture
def stack(aws: Any, tmp_path: Path, tools_config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from agentbot_testing.telegram_stack import real_runtime_stack

    with real_runtime_stack(aws, tmp_path, monkeypatch, config=tools_config, responder=responder) as stack:
        yield stack


def _post(stack: Any, update_id: int, chat_id: int, chat_type: str, **fields: Any) -> str:
    event = webhook_event(
        update(update_id, message_id=update_id, chat_id=chat_id, chat_type=chat_type, **fields)
    )
    response = stack.producer.handle_event(event)
    assert response["statusCode"] == 200, response
    return str(json.loads(response["body"])["outcome"])


def _upgrade(stack: Any, first_update: int) -> str:
    """What Telegram sends when the group becomes a supergroup; the producer's outcome for the
    supergroup's message."""
    _post(stack, first_update, OLD, "group", text=None, migrate_to_chat_id=NEW)
    return _post(stack, first_update + 1, NEW, "supergroup", text=None, migrate_from_chat_id=OLD)


def test_a_group_upgraded_to_a_supergroup_goes_on_with_its_conversation_and_its_settings(stack) -> None:
    _post(stack, 1, OLD, "group", text=f"@{BOT_USERNAME} remember the word heron")
    _post(stack, 2, OLD, "group", text=f"/usage@{BOT_USERNAME} on")
    stack.drain(stack.consumer())
    assert stack.replies(OLD)[0]["text"].startswith("turns=1 last=remember the word heron")

    assert _upgrade(stack, 3) == "enqueued: chat moved"
    _post(stack, 5, NEW, "supergroup", text=f"@{BOT_USERNAME} what was the word?")
    stack.drain(stack.consumer())

    [answer] = [m["text"] for m in stack.replies(NEW)]  # nothing said about the move itself
    assert answer.startswith("turns=2 last=what was the word?")  # the group's message was shown
    assert "tokens in" in answer  # /usage on came along
    moved = stack.registry().get_session(SessionKey(tenant="default", chat_id=NEW))
    assert moved is not None and moved.turns == 2
    # The supergroup's turns go on in the transcript the group wrote: one conversation.
    old = stack.registry().get_session(SessionKey(tenant="default", chat_id=OLD))
    assert old is not None and old.previous_session_ids == (moved.sdk_session_id,)


def test_a_message_of_the_group_answered_after_the_move_never_writes_into_the_supergroups_conversation(
    stack,
) -> None:
    """A record of the group can still run after the move (queued behind its last turn, or a
    retry), beside the supergroup's first turn: two leases, so one SDK session must not be
    both chats' or its transcript forks and an answered message drops out of it."""
    _post(stack, 40, OLD, "group", text=f"@{BOT_USERNAME} the bird is a heron")
    stack.drain(stack.consumer())
    _post(stack, 41, OLD, "group", text=f"@{BOT_USERNAME} slow: the fish is a carp")
    assert _upgrade(stack, 42) == "enqueued: chat moved"
    _post(stack, 44, NEW, "supergroup", text=f"@{BOT_USERNAME} the tree is an oak")
    queued = {json.loads(m["Body"])["message"]["update_id"]: m for m in stack.receive()}
    consumer = stack.consumer()
    consumer.handle_batch(_event(stack, queued[43]))  # the move, the group idle for a moment
    # The group's late message and the supergroup's at once (one batch, two FIFO groups).
    late = sqs_lambda_event(
        [queued[41], queued[44]],
        queue_arn=stack.aws.resources.queue_arn,
        region=stack.aws.sqs.meta.region_name,
    )
    assert consumer.handle_batch(late)["batchItemFailures"] == []
    for raw in queued.values():
        stack.aws.sqs.delete_message(
            QueueUrl=stack.aws.resources.queue_url, ReceiptHandle=raw["ReceiptHandle"]
        )
    _post(stack, 45, NEW, "supergroup", text=f"@{BOT_USERNAME} name them")
    stack.drain(stack.consumer())

    sent = json.dumps(stack.model.model_calls[-1].body["messages"])
    assert "the tree is an oak" in sent and "the bird is a heron" in sent  # nothing dropped out
    texts = [m["text"] for m in stack.replies()]
    assert any(t.startswith("turns=3 last=name them") for t in texts), texts
    # The group's late message is answered, from a conversation of its own.
    assert any(t.startswith("turns=1 last=slow: the fish is a carp") for t in texts), texts


def test_a_supergroup_that_was_never_a_group_with_the_bot_starts_afresh(stack) -> None:
    assert _upgrade(stack, 20) == "enqueued: chat moved"
    _post(stack, 22, NEW, "supergroup", text=f"@{BOT_USERNAME} hello")
    stack.drain(stack.consumer())

    assert [m["text"] for m in stack.replies(NEW)] == ["turns=1 last=hello"]


@pytest.fixture
def stub_stack(aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The path with the runtime stub (see agentbot_testing.telegram_stack)."""
    from agentbot_testing.telegram_stack import telegram_stack

    with telegram_stack(aws, tmp_path, monkeypatch) as stack:
        yield stack


def _group_turn_running(stack: Any) -> Any:
    """The group has a conversation and a turn of it is running (its lease, held elsewhere);
    the group is then upgraded. Returns the running turn's lease."""
    _post(stack, 30, OLD, "group", text=f"@{BOT_USERNAME} the word is heron")
    stack.drain(stack.consumer())
    old = SessionKey(tenant="default", chat_id=OLD)
    running = stack.registry().acquire_lease(old, owner="runtime-elsewhere", duration_s=600)
    assert _upgrade(stack, 31) == "enqueued: chat moved"
    return running


def _event(stack: Any, raw: dict[str, Any]) -> dict[str, Any]:
    return sqs_lambda_event(
        [raw], queue_arn=stack.aws.resources.queue_arn, region=stack.aws.sqs.meta.region_name
    )


def test_a_move_waits_for_the_groups_running_turn_inside_the_invocation(stub_stack) -> None:
    stack = stub_stack
    running = _group_turn_running(stack)
    raw = stack.receive_for_the_last_time()
    threading.Timer(1.0, stack.registry().release_lease, args=(running,)).start()

    response = stack.consumer().handle_batch(_event(stack, raw))

    assert response["batchItemFailures"] == []
    assert stack.dead_letters() == [] and stack.replies(NEW) == []
    moved = stack.registry().get_session(SessionKey(tenant="default", chat_id=NEW))
    assert moved is not None and moved.moved_from == f"default/{OLD}/0"


def test_a_move_behind_a_turn_longer_than_the_invocation_is_put_off_never_dead_lettered(stub_stack) -> None:
    stack = stub_stack
    running = _group_turn_running(stack)
    raw = stack.receive_for_the_last_time()

    ends = time.monotonic() + DELIVERY_RESERVE_S + 1  # a second to wait, no more
    response = stack.consumer().handle_batch(
        _event(stack, raw), remaining_time_ms=lambda: int((ends - time.monotonic()) * 1000)
    )

    assert response["batchItemFailures"] == []  # acknowledged: a copy waits on the queue
    stack.aws.sqs.delete_message(QueueUrl=stack.aws.resources.queue_url, ReceiptHandle=raw["ReceiptHandle"])
    assert stack.dead_letters() == []
    assert stack.replies(NEW) == []  # nothing failed, so nothing to tell
    stack.registry().release_lease(running)
    stack.drain(stack.consumer())
    moved = stack.registry().get_session(SessionKey(tenant="default", chat_id=NEW))
    assert moved is not None and moved.moved_from == f"default/{OLD}/0"


LISTED_GROUP, ITS_SUPERGROUP, STRANGERS = -4077, -1001234567077, -1009876543210


def test_a_listed_group_upgraded_to_a_supergroup_stays_allowed_while_the_group_is_listed(
    stub_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telegram_producer import handler as producer_handler

    stack = stub_stack
    monkeypatch.setenv("ALLOWED_CHAT_IDS", str(LISTED_GROUP))
    stack.producer = producer_handler.build_producer()
    hello = f"@{BOT_USERNAME} hello"
    # Before the upgrade the supergroup id is a stranger's (and that answer is kept a moment).
    assert _post(stack, 40, ITS_SUPERGROUP, "supergroup", text=hello) == "ignored: not on the allow-list"
    _post(stack, 41, LISTED_GROUP, "group", text=None, migrate_to_chat_id=ITS_SUPERGROUP)
    assert (
        _post(stack, 42, ITS_SUPERGROUP, "supergroup", text=None, migrate_from_chat_id=LISTED_GROUP)
        == "enqueued: chat moved"
    )
    assert _post(stack, 43, ITS_SUPERGROUP, "supergroup", text=hello) == "enqueued"
    stop = stack.producer.handle_event(
        webhook_event(update(44, message_id=44, chat_id=ITS_SUPERGROUP, chat_type="supergroup", text="/stop"))
    )
    assert json.loads(stop["body"])["text"] == "Nothing is running in this chat right now."
    # Another container knows it from the table; a stranger's supergroup is still refused.
    stack.producer = producer_handler.build_producer()
    assert _post(stack, 45, ITS_SUPERGROUP, "supergroup", text=f"{hello} again") == "enqueued"
    assert _post(stack, 46, STRANGERS, "supergroup", text=hello) == "ignored: not on the allow-list"
    stack.drain(stack.consumer())
    assert len(stack.replies(ITS_SUPERGROUP)) == 2  # both answered
    # The operator takes the group off the list: its supergroup goes with it.
    monkeypatch.setenv("ALLOWED_CHAT_IDS", "-4078")
    stack.producer = producer_handler.build_producer()
    assert _post(stack, 47, ITS_SUPERGROUP, "supergroup", text=hello) == "ignored: not on the allow-list"


def test_a_container_that_saw_the_supergroup_before_its_move_was_recorded_answers_it_within_seconds(
    stub_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram delivers up to 40 updates at once: a message sent in the new supergroup can reach
    one container while the move (the supergroup's first message) is still being handled by
    another. The first one's 'not a moved chat' answer must not outlive the move by a minute:
    every message to the bot there would be ignored (and dropped) until it expired."""
    from telegram_producer import handler as producer_handler

    stack = stub_stack
    monkeypatch.setenv("ALLOWED_CHAT_IDS", str(LISTED_GROUP))
    container_a = producer_handler.build_producer()
    container_b = producer_handler.build_producer()
    hello = f"@{BOT_USERNAME} hello"
    stack.producer = container_b  # races the move
    assert _post(stack, 60, ITS_SUPERGROUP, "supergroup", text=hello) == "ignored: not on the allow-list"
    stack.producer = container_a
    assert (
        _post(stack, 61, ITS_SUPERGROUP, "supergroup", text=None, migrate_from_chat_id=LISTED_GROUP)
        == "enqueued: chat moved"
    )
    time.sleep(6)  # the user asks again a few seconds later; it reaches the container that raced
    stack.producer = container_b
    assert _post(stack, 62, ITS_SUPERGROUP, "supergroup", text=f"{hello} again") == "enqueued"
