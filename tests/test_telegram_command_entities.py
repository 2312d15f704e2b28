"""A command is what Telegram marks as one (a ``bot_command`` entity at the start, after a
mention of the bot if any), for the producer and the consumer alike. Before, the producer read
"/stop" shown as code as words (no stop) and queued it, and the consumer read the same text as
the /stop command and answered "Nothing is running" instead of giving it to the agent."""

from __future__ import annotations

from typing import Any

import pytest
from agentbot_testing.telegram_support import BOT_USERNAME, message

GROUP = -100410
IN_GROUP = {"chat_id": GROUP, "chat_type": "supergroup"}


def _as_code(text: str) -> list[dict[str, Any]]:
    """The entities of ``text`` written in backticks: code, and no command Telegram marks."""
    return [{"type": "code", "offset": 0, "length": len(text)}]


@pytest.mark.parametrize("written", ["/stop", "/new", "/status", "/help"])
def test_a_command_shown_as_code_reaches_the_agent_as_text(stack: Any, written: str) -> None:
    shown = message(message_id=80, text=written, entities=_as_code(written))
    assert stack.post({"update_id": 800, "message": shown}) == 200
    stack.drain(stack.consumer())
    [run] = stack.runs()
    assert run["prompt"].endswith(written)
    assert [m["text"] for m in stack.replies(501)] == [f"Answer to: {written}"]


def test_a_mention_then_a_command_shown_as_code_in_a_group_reaches_the_agent_as_text(stack: Any) -> None:
    text = f"@{BOT_USERNAME} /new"
    mention = {"type": "mention", "offset": 0, "length": len(BOT_USERNAME) + 1}
    code = {"type": "code", "offset": len(BOT_USERNAME) + 2, "length": 4}
    shown = message(message_id=81, text=text, entities=[mention, code], **IN_GROUP)
    assert stack.post({"update_id": 810, "message": shown}) == 200
    stack.drain(stack.consumer())
    [run] = stack.runs()
    assert run["prompt"].endswith("/new")
    [answer] = stack.replies(GROUP)
    assert answer["text"].startswith("Answer to:") and answer["text"].endswith("/new")


def test_a_bare_command_shown_as_code_does_not_address_the_bot_in_a_group(stack: Any) -> None:
    """Bare, only a command Telegram marks addresses the bot (its command menu sends one so):
    "/status" in backticks is a member's words to the others."""
    shown = message(message_id=82, text="/status", entities=_as_code("/status"), **IN_GROUP)
    assert stack.post({"update_id": 820, "message": shown}) == 200
    stack.drain(stack.consumer())
    assert stack.runs() == [] and stack.replies(GROUP) == []


def test_a_command_telegram_marks_before_punctuation_is_the_command(stack: Any) -> None:
    """ "/status!" is the command Telegram marks ("/status"), as "/stop!" stops: not words for
    the model."""
    assert stack.post({"update_id": 830, "message": message(message_id=83, text="/status!")}) == 200
    stack.drain(stack.consumer())
    assert stack.runs() == []
    [answer] = stack.replies(501)
    assert answer["text"].startswith("No conversation yet"), answer["text"]
