"""A message edited into /stop before its turn began is not answered, whether it waits in the
queue or reaches the producer only after its edit (Telegram sent it again), with no backlog
count to say a message waits (CHAT_QUEUE_LIMIT=0, as the test stack runs). Before, the edit
answered "Nothing is running" and the message it turned into a /stop ran all the same."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agentbot_testing.telegram_support import BOT_USERNAME, message, webhook_event, with_entities
from telegram_core._update_dedup import TRACKING_MARGIN_S

GROUP = -100420
IN_GROUP = {"chat_id": GROUP, "chat_type": "supergroup"}
STOPPED = "⏹ Stopped before I wrote anything."


def _sent(message_id: int, text: str, **chat: Any) -> dict[str, Any]:
    # (dated past the margin the tracking of edits starts after: see TRACKING_MARGIN_S)
    sent = message(message_id=message_id, text=text, **chat)
    sent["date"] += TRACKING_MARGIN_S
    return sent


def _edited(original: dict[str, Any], text: str) -> dict[str, Any]:
    kept = {k: v for k, v in original.items() if k not in ("text", "entities")}
    return with_entities({**kept, "text": text, "edit_date": original["date"] + 20})


def _post(stack: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = stack.producer.handle_event(webhook_event(body))
    assert response["statusCode"] == 200, response
    return dict(json.loads(response["body"]))


def _edits_tracked(stack: Any, **chat: Any) -> None:
    """The first edit the producer sees only starts the tracking of edits (README "Telegram")."""
    before = message(message_id=1, text="/stpo", **chat)
    before["date"] -= 60
    assert (
        "ignored" in _post(stack, {"update_id": 899, "edited_message": _edited(before, "/stop")})["outcome"]
    )


@pytest.mark.parametrize(
    ("chat", "asked", "where"),
    [({}, "work:1", 501), (IN_GROUP, f"@{BOT_USERNAME} work:1", GROUP)],
    ids=["private", "group"],
)
def test_a_waiting_message_edited_into_a_stop_is_not_answered(
    stack: Any, chat: dict[str, Any], asked: str, where: int
) -> None:
    _edits_tracked(stack, **chat)
    original = _sent(90, asked, **chat)
    assert _post(stack, {"update_id": 900, "message": original})["outcome"] == "enqueued"
    answer = _post(stack, {"update_id": 901, "edited_message": _edited(original, "/stop")})
    assert answer["text"] == "Nothing is running in this chat right now."  # nothing had begun
    stack.drain(stack.consumer())
    assert [m["text"] for m in stack.replies(where)] == [STOPPED]
    # A message sent after the edit is answered as usual.
    assert _post(stack, {"update_id": 902, "message": _sent(91, asked, **chat)})["outcome"] == "enqueued"
    stack.drain(stack.consumer())
    assert len(stack.replies(where)) == 2 and stack.replies(where)[-1]["text"] != STOPPED


@pytest.mark.parametrize(
    ("chat", "asked", "where"),
    [({}, "work:1", 501), (IN_GROUP, f"@{BOT_USERNAME} work:1", GROUP)],
    ids=["private", "group"],
)
def test_a_message_that_reaches_the_producer_after_its_edit_into_a_stop_is_answered_stopped_once(
    stack: Any, chat: dict[str, Any], asked: str, where: int
) -> None:
    """Telegram sends the message again (its first delivery failed) after the edit came: in a
    group too, its sender learns it was withdrawn, not only that nothing ran then."""
    _edits_tracked(stack, **chat)
    original = _sent(92, asked, **chat)
    answer = _post(stack, {"update_id": 911, "edited_message": _edited(original, "/stop")})
    assert answer["text"] == "Nothing is running in this chat right now."
    assert _post(stack, {"update_id": 910, "message": original})["outcome"] == "enqueued"
    stack.drain(stack.consumer())
    assert [m["text"] for m in stack.replies(where)] == [STOPPED]
    # Sent again once more, it is answered no second time; nor is a further edit of it.
    assert _post(stack, {"update_id": 910, "message": original})["outcome"] == "duplicate"
    edited_again = _edited(original, f"@{BOT_USERNAME} work:2")
    assert "ignored" in _post(stack, {"update_id": 912, "edited_message": edited_again})["outcome"]
    stack.drain(stack.consumer())
    assert [m["text"] for m in stack.replies(where)] == [STOPPED]
