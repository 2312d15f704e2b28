"""What counts as a mention of the bot in a group, through the whole stack: what Telegram
marks as one, and nothing else. Before, an e-mail address holding the bot's username started a
paid turn (the model read it cut to "write to help.com"), and so did a mention followed only by
a zero-width space."""

from __future__ import annotations

from typing import Any

from agentbot_testing.telegram_support import BOT_USERNAME, update
from telegram_producer import handler as producer_handler

GROUP = -100400
IN_GROUP = {"chat_id": GROUP, "chat_type": "supergroup"}
ADDRESS = f"write to help@{BOT_USERNAME}.com"


def test_an_email_address_holding_the_bots_username_is_not_a_mention(stack, monkeypatch) -> None:
    assert stack.post(update(700, message_id=70, text=ADDRESS, **IN_GROUP)) == 200
    stack.drain(stack.consumer())
    assert stack.runs() == [] and stack.replies(GROUP) == []

    monkeypatch.setenv("GROUP_REPLY_MODE", "always")
    stack.producer = producer_handler.build_producer()  # with the setting
    assert stack.post(update(701, message_id=71, text=ADDRESS, **IN_GROUP)) == 200
    stack.drain(stack.consumer())
    [run] = stack.runs()
    assert run["prompt"].endswith(ADDRESS)  # the address as written


def test_a_mention_followed_only_by_invisible_characters_is_no_turn(stack: Any) -> None:
    for update_id, invisible in enumerate(["\u200b", "\u2060\ufeff", "\ufe0f"], start=710):
        text = f"@{BOT_USERNAME}{invisible}"
        assert stack.post(update(update_id, message_id=update_id, text=text, **IN_GROUP)) == 200
    stack.drain(stack.consumer())
    assert stack.runs() == [] and stack.replies(GROUP) == []


def test_a_mention_and_a_command_to_the_bot_still_start_turns(stack: Any) -> None:
    assert stack.post(update(720, message_id=72, text=f"@{BOT_USERNAME} mail help@x.org", **IN_GROUP)) == 200
    assert stack.post(update(721, message_id=73, text=f"/status@{BOT_USERNAME}", **IN_GROUP)) == 200
    stack.drain(stack.consumer())
    [run] = stack.runs()
    assert run["prompt"].endswith("mail help@x.org")
    assert any(m["text"].startswith("Answer to:") for m in stack.replies(GROUP))
    assert len(stack.replies(GROUP)) == 2  # the status too


def test_a_private_message_showing_nothing_is_answered_without_a_paid_turn(stack: Any) -> None:
    """Only a word joiner, sent to the bot alone: a short notice, not silence and not the model."""
    assert stack.post(update(730, message_id=74, text="\u2060")) == 200
    stack.drain(stack.consumer())
    assert stack.runs() == []
    [reply] = stack.replies(update(730)["message"]["chat"]["id"])
    assert "not supported" in reply["text"]
