"""/usage on|off: an optional line under each answer with that turn's tokens and cost."""

from __future__ import annotations

from agentbot_testing.telegram_support import update

CHAT = 501
OTHER_CHAT = 502


def texts(stack, chat_id: int = CHAT) -> list[str]:
    return [m["text"] for m in stack.replies(chat_id)]


def test_the_usage_footer_is_off_until_asked_for_and_then_shows_each_turns_tokens_and_cost(stack) -> None:
    consumer = stack.consumer()
    stack.post(update(700, text="/usage"))
    stack.post(update(701, text="before"))
    stack.post(update(702, text="/usage on"))
    stack.post(update(703, text="question"))
    stack.post(update(704, text="free: a demo-model turn"))
    stack.post(update(705, chat_id=OTHER_CHAT, user_id=OTHER_CHAT, text="elsewhere"))
    stack.post(update(706, text="/usage off"))
    stack.post(update(707, text="after"))
    stack.drain(consumer)

    assert texts(stack) == [
        "The usage line under answers is off in this chat. Send /usage on or /usage off.",
        "Answer to: before",
        "From now on each answer in this chat ends with its tokens and cost. /usage off stops it.",
        "Answer to: question\n\n1,200 tokens in · 34 out · $0.0100",
        "Answer to: free: a demo-model turn\n\n0 tokens in · 0 out · $0 (nothing billed)",
        "Answers in this chat no longer show their tokens and cost.",
        "Answer to: after",
    ]
    assert texts(stack, OTHER_CHAT) == ["Answer to: elsewhere"]  # a setting of one chat only


def test_help_lists_the_usage_command(stack) -> None:
    stack.post(update(710, text="/help"))
    stack.drain(stack.consumer())
    [reply] = texts(stack)
    assert "/usage on|off: show the tokens and cost of each answer below it" in reply


def test_the_usage_line_stays_out_of_a_code_block_the_answer_left_open(stack) -> None:
    # An answer cut off mid-code (the model's output limit) ends inside a fence it never closed.
    stack.post(update(720, text="/usage on"))
    stack.post(update(721, text="Here is the script:\n```python\nprint(1)"))
    stack.drain(stack.consumer())
    answer = stack.replies(CHAT)[-1]
    assert answer["text"].endswith("print(1)\n\n1,200 tokens in · 34 out · $0.0100"), answer["text"]
    sent = stack.telegram.calls("sendMessage")[-1].params["text"]
    assert sent.endswith("print(1)</code></pre>\n\n<i>1,200 tokens in · 34 out · $0.0100</i>"), sent
