"""What counts as a mention of the bot in a group, through the whole stack: what Telegram
marks as one, and nothing else. Before, an e-mail address holding the bot's username started a
paid turn (the model read it cut to "write to help.com"), and so did a mention followed only by
a zero-width space."""

from __future__ import annotations

from typing import Any

from agentbot_testing.telegram_support import BOT_USERNAME, message, update, with_entities
from telegram_core._update_dedup import TRACKING_MARGIN_S
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


def test_an_edit_that_adds_the_mention_is_answered_once(stack: Any) -> None:
    """A member who forgot the @mention edits it in: answered once, in reply to the message;
    editing it again, or editing a message the bot answered, brings no second answer. The
    first edit the producer ever sees only starts the tracking (the messages before it may
    have been answered by a version that kept no record of it)."""

    def edit(update_id: int, original: dict[str, Any], text: str) -> int:
        kept = {k: v for k, v in original.items() if k not in ("text", "entities")}
        edited = with_entities({**kept, "text": text, "edit_date": original["date"] + update_id % 100})
        return stack.post({"update_id": update_id, "edited_message": edited})

    before = message(message_id=73, text="hi", **IN_GROUP)
    before["date"] -= 60
    assert edit(729, before, f"@{BOT_USERNAME} hi") == 200
    # (dated past the margin the tracking starts after: see TRACKING_MARGIN_S)
    forgot = message(message_id=74, text="what is 2+2?", **IN_GROUP)
    forgot["date"] += TRACKING_MARGIN_S
    assert stack.post({"update_id": 730, "message": forgot}) == 200
    stack.drain(stack.consumer())
    assert stack.runs() == []

    assert edit(731, forgot, f"@{BOT_USERNAME} what is 2+2?") == 200
    stack.drain(stack.consumer())
    [run] = stack.runs()
    assert run["prompt"].endswith("what is 2+2?")
    # Asked when the mention was added: a late answer is timed from the edit, not the message.
    assert run["sent_at_epoch_s"] == forgot["date"] + 31  # edit() dates update 731 31 s later
    [answer] = stack.replies(GROUP)
    assert answer["reply_to_message"]["message_id"] == 74

    assert edit(732, forgot, f"@{BOT_USERNAME} what is 2+3?") == 200
    answered = message(message_id=75, text=f"@{BOT_USERNAME} waht is 3+3", **IN_GROUP)
    answered["date"] += TRACKING_MARGIN_S
    assert stack.post({"update_id": 733, "message": answered}) == 200
    assert edit(734, answered, f"@{BOT_USERNAME} what is 3+3") == 200
    stack.drain(stack.consumer())
    assert [run["update_id"] for run in stack.runs()] == [731, 733]
    assert len(stack.replies(GROUP)) == 2
