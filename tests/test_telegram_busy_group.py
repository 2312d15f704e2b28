"""People in a busy forum supergroup, through the producer, the queue, the consumer and the
runtime stub: what the topic shows while a turn runs and after it is answered, when Telegram
is slow to do what the bot asks."""

from __future__ import annotations

from typing import Any

from agentbot_testing.telegram_support import BOT_USERNAME, update
from local_stack import TelegramFault

GROUP = -100300
TOPIC = 7
IN_TOPIC = {"chat_id": GROUP, "chat_type": "supergroup", "thread_id": TOPIC}


def shown(stack: Any) -> list[tuple[str, int | None, bool]]:
    """What the group shows of the bot: each message's text, topic and whether it has buttons."""
    return [
        (m["text"], m.get("message_thread_id"), bool(m.get("reply_markup"))) for m in stack.replies(GROUP)
    ]


def test_the_progress_message_goes_once_answered_even_when_telegram_fails_its_first_delete(stack) -> None:
    """A 502 on the delete left "Working, step 3" with a Stop button in the topic for good,
    under the answer: a step long done and a button that stops nothing."""
    assert stack.post(update(700, message_id=70, text=f"@{BOT_USERNAME} work:2 go", **IN_TOPIC)) == 200
    stack.telegram.inject("deleteMessage", TelegramFault.server_error(), times=1)
    stack.drain(stack.consumer(progress_poll_s=0.1))
    progress = [m for m in stack.replies(GROUP) if m.get("reply_markup")]
    assert progress == [], shown(stack)  # it was there while the turn ran, and is gone
    assert [c.status for c in stack.telegram.calls("deleteMessage")] == [502, 200]
    [answer] = stack.replies(GROUP)
    assert answer["text"] == "Answer to: [From @alice]\n\nwork:2 go"
    assert (answer["message_thread_id"], answer["reply_to_message"]["message_id"]) == (TOPIC, 70)
