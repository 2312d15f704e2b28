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


def _long_line_text(first: int) -> str:
    """A text as long as an app's part of a split paste (over 3,500 characters)."""
    return "\n".join(
        f"line {i}: request {i} took {i % 97} ms, worker {i % 7}" for i in range(first, first + 100)
    )


@pytest.mark.parametrize(
    ("chat", "mention", "where"),
    [({}, "", 501), (IN_GROUP, f"@{BOT_USERNAME} ", GROUP)],
    ids=["private", "group"],
)
def test_a_later_part_of_a_paste_edited_into_a_stop_withdraws_the_whole_paste(
    stack: Any, chat: dict[str, Any], mention: str, where: int
) -> None:
    """The app split one long text into three messages, answered by one turn named after the
    first: its sender edits the second into /stop before that turn began."""
    _edits_tracked(stack, **chat)
    parts = [_sent(93, mention + _long_line_text(0), **chat), _sent(94, _long_line_text(100), **chat)]
    parts.append(_sent(95, "the end of the log\n\nwork:1", **chat))  # (the stub's script)
    outcomes = [
        _post(stack, {"update_id": 920 + i, "message": part})["outcome"] for i, part in enumerate(parts)
    ]
    assert outcomes == ["enqueued"] + ["paste part: answered with its paste"] * 2
    answer = _post(stack, {"update_id": 923, "edited_message": _edited(parts[1], "/stop")})
    assert answer["text"] == "Nothing is running in this chat right now."
    stack.drain(stack.consumer())
    assert [m["text"] for m in stack.replies(where)] == [STOPPED]


def test_a_later_photo_of_an_album_edited_into_a_stop_withdraws_the_whole_album(stack: Any) -> None:
    """Telegram sends an album as one message per photo; its turn is named after the first."""
    _edits_tracked(stack)
    photos = []
    for i in range(3):
        file_id = stack.telegram.add_file(b"photo" * 50, file_path=f"photos/s{i}.jpg")
        photo = [{"file_id": file_id, "file_unique_id": f"s{i}", "width": 8, "height": 6}]
        caption = {"caption": "work:1"} if i == 0 else {}
        photos.append(_sent(96 + i, None, photo=photo, media_group_id="24680", **caption))
    outcomes = [
        _post(stack, {"update_id": 930 + i, "message": part})["outcome"] for i, part in enumerate(photos)
    ]
    assert outcomes == ["enqueued"] + ["album part: answered with its album"] * 2
    recaptioned = with_entities({**photos[2], "caption": "/stop", "edit_date": photos[2]["date"] + 20})
    answer = _post(stack, {"update_id": 933, "edited_message": recaptioned})
    assert answer["text"] == "Nothing is running in this chat right now."
    stack.drain(stack.consumer())
    assert [m["text"] for m in stack.replies(501)] == [STOPPED]
