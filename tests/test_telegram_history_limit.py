"""A chat whose history nears what the runtime's memory can load is told under each answer, and
one past it is told to start afresh (the runtime refuses the turn, see agent-runtime's
test_history_limit)."""

from __future__ import annotations

from agentbot_testing.telegram_support import update

CHAT = 601


def test_an_answer_near_the_limit_says_how_long_the_history_is_and_past_it_the_user_is_told_to_start_afresh(
    stack,
) -> None:
    consumer = stack.consumer()
    stack.post(update(800, chat_id=CHAT, user_id=CHAT, text="a chat well inside the limit"))
    stack.post(update(801, chat_id=CHAT, user_id=CHAT, text="history:62/76 long chat"))
    stack.post(update(802, chat_id=CHAT, user_id=CHAT, text="history:80/76 too long"))
    stack.drain(consumer)

    near = (
        "⚠️ This conversation is long: 62 MB of history, and at about 76 MB I can no longer "
        "continue it. Send /new to start a fresh one."
    )
    past = (
        "This conversation has grown too long for me to continue: its history no longer fits "
        "in my memory. Send /new to start a fresh one."
    )
    assert [m["text"] for m in stack.replies(CHAT)] == [
        "Answer to: a chat well inside the limit",
        f"Answer to: history:62/76 long chat\n\n{near}",
        past,
    ]
    # The refusal is an answer, the same for every message until /new: not a failure that
    # dead-letters the message and raises the operator's alarm.
    assert stack.dead_letters() == []


def test_a_refused_message_still_declines_the_call_waiting_for_approval_and_its_buttons_say_so(
    stack,
) -> None:
    assert stack.post(update(810, chat_id=CHAT, user_id=CHAT, text="ask:Bash rm -rf build")) == 200
    stack.drain(stack.consumer())
    [asking] = [m for m in stack.replies(CHAT) if m.get("reply_markup")]

    assert stack.post(update(811, chat_id=CHAT, user_id=CHAT, text="history:80/76 too long")) == 200
    stack.drain(stack.consumer())

    [edited] = [m for m in stack.replies(CHAT) if m["message_id"] == asking["message_id"]]
    assert edited["text"] == "❌ Declined: you sent a new message: Bash rm -rf build"
    assert not edited.get("reply_markup")
    assert stack.replies(CHAT)[-1]["text"].startswith("This conversation has grown too long")
