"""A channel's comments: its discussion group shows each post's comments as a thread, and a
reader of the post sees only what is in it. Telegram puts a message there when it replies to
one of the thread's messages (sendMessage's ``message_thread_id`` is for forum topics), so
every part of the bot's answer to a comment must quote it. Through the producer, the queue,
the consumer and the runtime stub, as in test_telegram_group_people."""

from __future__ import annotations

import copy
import json
from typing import Any

from agentbot_testing.telegram_support import BOT_USERNAME, update, webhook_event
from telegram_core import decode_envelope

GROUP = -100400
CHANNEL = -100401
POST = 30  # the channel's post as Telegram forwarded it into the group: the thread's root
COMMENT = 31


def a_comment(update_id: int, text: str) -> dict[str, Any]:
    """Alice's comment under the channel's post: in the post's thread, not a forum topic."""
    post = {
        "message_id": POST,
        "from": {"id": 777000, "is_bot": False, "first_name": "Telegram"},
        "sender_chat": {"id": CHANNEL, "type": "channel", "title": "News"},
        "chat": {"id": GROUP, "type": "supergroup", "title": "News chat"},
        "date": 1,
        "is_automatic_forward": True,
        "text": "We ship on Friday.",
    }
    return update(
        update_id,
        message_id=COMMENT,
        chat_id=GROUP,
        chat_type="supergroup",
        text=text,
        message_thread_id=POST,
        reply_to_message=post,
    )


def in_the_thread(stack: Any) -> list[bool]:
    """For each message the bot sent the group: whether it is in the comment's thread (it
    quotes the comment, or one of the bot's own messages there)."""
    placed: dict[int, bool] = {}
    for sent in stack.replies(GROUP):
        quoted = (sent.get("reply_to_message") or {}).get("message_id")
        placed[sent["message_id"]] = quoted == COMMENT or placed.get(quoted, False)
    return list(placed.values())


def test_every_part_of_a_long_answer_to_a_comment_stays_under_the_post(stack) -> None:
    assert stack.post(a_comment(800, f"@{BOT_USERNAME} long:9000")) == 200
    stack.drain(stack.consumer())
    assert len(stack.replies(GROUP)) >= 3
    assert all(in_the_thread(stack)), in_the_thread(stack)


def test_files_sent_with_an_answer_to_a_comment_stay_under_the_post(stack) -> None:
    assert stack.post(a_comment(810, f"@{BOT_USERNAME} files:2")) == 200
    stack.drain(stack.consumer())
    assert len(stack.replies(GROUP)) == 3
    assert all(in_the_thread(stack)), in_the_thread(stack)


def test_an_approval_asked_after_files_in_a_comments_thread_is_shown_under_the_post(stack) -> None:
    """Its asker reads the comments: buttons outside them could not be found to be pressed."""
    assert stack.post(a_comment(820, f"@{BOT_USERNAME} ask:Bash ls files:1")) == 200
    stack.drain(stack.consumer())
    asking = [m for m in stack.replies(GROUP) if m.get("reply_markup")]
    assert len(asking) == 1 and len(stack.replies(GROUP)) >= 2, stack.replies(GROUP)
    assert all(in_the_thread(stack)), in_the_thread(stack)


def test_the_answer_an_allow_in_the_comments_lets_run_stays_under_the_post(stack) -> None:
    """The press is on the bot's question, which Telegram names as in the post's thread: the
    turn it resumes answers there too, every part quoting the question."""
    assert stack.post(a_comment(830, f"@{BOT_USERNAME} ask:Bash ls")) == 200
    stack.drain(stack.consumer())
    [asking] = [m for m in stack.replies(GROUP) if m.get("reply_markup")]
    shown = {**copy.deepcopy(asking), "message_thread_id": POST}  # as Telegram shows it
    press = stack.telegram.press_button(shown, text="Allow once", username="alice")
    answer = stack.producer.handle_event(webhook_event(press))
    assert json.loads(answer["body"])["text"] == "Allowed once."
    [queued] = [decode_envelope(raw["Body"]).message for raw in stack.receive()]
    assert (queued.kind, queued.message_id, queued.in_reply_thread) == (
        "approval",
        asking["message_id"],
        True,
    )
