"""The operator's limits on one turn as a user meets them: the agent's step limit (`max_turns`
in claude-config's agents.json), the turn's time limit and the disk its files may use. A run
one of them stopped before it wrote anything is the runtime's failure (see agent-runtime's
test_turn_limits), answered here like a budget's refusal: not a dead letter."""

from __future__ import annotations

import pytest
from agentbot_testing.telegram_support import update
from local_stack import TelegramFault
from sqs_consumer._timing import time_left_of
from structlog.testing import capture_logs

CHAT = 502

STOPPED_BY = {
    "max_turns": "I stopped because this took too many steps. Please ask for a smaller part.",
    "timeout": "This took longer than I can spend on one message, so I stopped. "
    "Please ask for a smaller part.",
    "disk_limit": "I stopped because the files I made for this chat grew past the disk space one "
    "chat may use. I remove them before your next message; please ask for something smaller.",
}


@pytest.mark.parametrize("limit", ["max_turns", "timeout", "disk_limit"])
def test_a_turn_a_limit_stopped_before_it_wrote_is_answered_counted_once_and_not_dead_lettered(
    stack, monkeypatch, limit
) -> None:
    """The operator's own limit at work, the same for this message however often it runs: the
    user reads which limit stopped it and what to do, the operator a warning naming the setting,
    and the message is neither retried nor dead-lettered (the dead-letter alarm is not the
    operator's to answer for it, and a `dlq redrive` would pay the model again for a run the
    limit stops again). What the run paid counts once."""
    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.05")
    stack.post(update(440, chat_id=CHAT, text=f"limit:{limit}", user_id=78))
    with capture_logs() as logs:
        responses = stack.drain(stack.consumer())

    assert stack.replies(CHAT)[-1]["text"] == STOPPED_BY[limit]
    assert [r["update_id"] for r in stack.runs()] == [440]  # not retried
    assert all(not r["batchItemFailures"] for r in responses) and stack.receive() == []
    assert stack.dead_letters() == []
    [warning] = [entry for entry in logs if entry["event"] == "turn_stopped_by_limit"]
    assert warning["log_level"] == "warning" and warning["limit"] == limit
    if limit == "timeout":  # the runtime's own time (the consumer's left it more)
        assert warning["timed_out_by"] == "runtime"
    setting = {
        "max_turns": "max_turns in claude-config/agents.json",
        "timeout": "Timeout",
        "disk_limit": "SESSION_DISK_LIMIT_MB",
    }[limit]
    assert setting in warning["setting"]
    stack.post(update(441, chat_id=CHAT, text="/cost", user_id=78))
    stack.drain(stack.consumer())
    assert "You, today: $0.01 of $0.05" in stack.replies(CHAT)[-1]["text"]


def test_a_turn_out_of_time_after_a_wait_is_told_and_logged_as_that_not_as_the_runtimes_timeout(
    stack, monkeypatch
) -> None:
    """The consumer had spent a real share of its invocation before the turn (here the chat's
    previous message, earlier in the same batch), and its deadline cut the paid run. The user
    read "ask for a smaller part" and the operator "raise the runtime function's Timeout",
    which had not stopped it; the operator now also reads how long the wait took. Still
    answered once, counted once, not retried, not dead-lettered."""
    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.05")
    stack.post(update(445, chat_id=CHAT, text="sleep:20 first", user_id=82))
    stack.post(update(446, chat_id=CHAT, text="limit:timeout", user_id=82))
    messages = stack.receive()
    assert len(messages) == 2  # one batch: the second waits for the first's turn
    with capture_logs() as logs:
        # 70 s left, 65 after the 5 s delivery reserve (the runtime's 60 s fit, as 840 s fit in
        # 900 less 45): the first turn takes 20 s of it (more than a quarter), and the second
        # then gets under 45 s, below the runtime's 60 s.
        response = stack.hand_over(
            stack.consumer(delivery_reserve_s=5),
            messages,
            remaining_time_ms=time_left_of(70),
        )

    first, second = stack.replies(CHAT)[-2:]
    assert first["text"].startswith("Answer to: sleep:20 first"), first
    assert second["text"] == (
        "I had to wait before I could start on this message (for the previous message here, or "
        "to write down a recording), and ran out of time for it. Please send it again."
    )
    assert [r["update_id"] for r in stack.runs()] == [445, 446]  # not retried
    assert not response["batchItemFailures"] and stack.receive() == []
    assert stack.dead_letters() == []
    [warning] = [entry for entry in logs if entry["event"] == "turn_stopped_by_limit"]
    assert warning["limit"] == "timeout" and warning["timed_out_by"] == "caller"
    assert warning["setting"].startswith("the consumer function's Timeout"), warning
    assert warning["waited_s"] >= 20, warning  # the wait that took the turn's time
    stack.post(update(447, chat_id=CHAT, text="/cost", user_id=82))
    stack.drain(stack.consumer())
    assert "You, today: $0.02 of $0.05" in stack.replies(CHAT)[-1]["text"]


def test_a_turn_cut_by_the_consumers_deadline_without_a_wait_is_told_as_out_of_time(
    stack, monkeypatch
) -> None:
    """Nothing came before the turn: the consumer's time, less its delivery reserve, was simply
    shorter than the runtime's (its Timeout set so). The user reads the usual words, not of a
    wait that never happened, and the operator the setting that cut it: the consumer's Timeout
    and delivery reserve against the runtime function's Timeout."""
    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.05")
    stack.post(update(448, chat_id=CHAT, text="limit:timeout", user_id=83))
    [message] = stack.receive()
    with capture_logs() as logs:
        # 80 s left: the turn gets 35 s (after the delivery reserve), below the runtime's 60 s.
        response = stack.hand_over(stack.consumer(), [message], remaining_time_ms=time_left_of(80))

    assert stack.replies(CHAT)[-1]["text"] == STOPPED_BY["timeout"]
    assert [r["update_id"] for r in stack.runs()] == [448]  # not retried
    assert not response["batchItemFailures"] and stack.dead_letters() == []
    [warning] = [entry for entry in logs if entry["event"] == "turn_stopped_by_limit"]
    assert warning["limit"] == "timeout" and warning["timed_out_by"] == "caller"  # as the runtime said
    assert warning["waited_s"] < 5, warning
    setting = warning["setting"]
    assert "consumer function's Timeout" in setting and "delivery" in setting, setting
    assert "runtime function's Timeout" in setting and "wait" not in setting, setting


def test_a_short_wait_that_made_the_consumers_deadline_cut_the_turn_is_not_logged_as_a_setting_too_short(
    stack, monkeypatch
) -> None:
    """The consumer's time less its delivery reserve covers the runtime's (65 s against 60, as
    900 less 45 covers 840), and the chat's previous message took 8 s of it, under a quarter:
    the consumer's deadline then came before the runtime's own. The operator read that the
    consumer's Timeout less the reserve is shorter than the runtime's, and to lower the
    runtime's (the settings already were so); it is the wait before the turn that cut it."""
    stack.post(update(449, chat_id=CHAT, text="sleep:8 first", user_id=84))
    stack.post(update(450, chat_id=CHAT, text="limit:timeout", user_id=84))
    messages = stack.receive()
    assert len(messages) == 2  # one batch: the second waits for the first's turn
    with capture_logs() as logs:
        stack.hand_over(
            stack.consumer(delivery_reserve_s=5),
            messages,
            remaining_time_ms=time_left_of(70),
        )

    # Under a quarter of the invocation: the user reads the usual words (decided).
    assert stack.replies(CHAT)[-1]["text"] == STOPPED_BY["timeout"]
    [warning] = [entry for entry in logs if entry["event"] == "turn_stopped_by_limit"]
    assert warning["timed_out_by"] == "caller" and 8 <= warning["waited_s"] < 17.5, warning
    setting = warning["setting"]
    assert "is shorter than the runtime function's Timeout" not in setting, setting
    assert "shared with what came before the turn" in setting, setting


def test_a_wait_before_a_turn_the_consumers_timeout_cut_anyway_is_not_told_as_the_wait(stack) -> None:
    """The consumer's time less its delivery reserve (23 s) is short of the runtime's 60 s, and
    the chat's previous message took 8 s of it (over a quarter): without the wait the turn
    would have been cut all the same. The user read "I had to wait… Please send it again",
    which would only run out again; the operator the wait's setting, not the Timeouts'."""
    stack.post(update(451, chat_id=CHAT, text="sleep:8 first", user_id=85))
    stack.post(update(452, chat_id=CHAT, text="limit:timeout", user_id=85))
    messages = stack.receive()
    assert len(messages) == 2  # one batch: the second waits for the first's turn
    with capture_logs() as logs:
        stack.hand_over(
            stack.consumer(delivery_reserve_s=5),
            messages,
            remaining_time_ms=time_left_of(28),
        )

    assert stack.replies(CHAT)[-1]["text"] == STOPPED_BY["timeout"]
    [warning] = [entry for entry in logs if entry["event"] == "turn_stopped_by_limit"]
    assert warning["timed_out_by"] == "caller" and warning["waited_s"] >= 8, warning
    assert "is shorter than the runtime function's Timeout" in warning["setting"], warning


@pytest.mark.parametrize(
    ("limit", "note"),
    [
        (
            "max_turns",
            "⏹ I stopped here: this took more steps than I may take for one message. "
            "I remember what I did so far; to go on, ask for the next part.",
        ),
        ("timeout", "⏱ I reached the time limit (0 s), so I stopped here."),
    ],
)
def test_a_turn_a_limit_stopped_after_it_wrote_answers_with_what_it_wrote_counted_once(
    stack, monkeypatch, limit, note
) -> None:
    """As before: what it wrote is the answer, the note under it says which limit stopped it and
    how to go on; recorded, so a retry replays it (not paid twice), and nothing is dead-lettered."""
    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.05")
    stack.post(update(450, chat_id=CHAT, text=f"limit:{limit} wrote", user_id=79))
    stack.drain(stack.consumer())

    answer = stack.replies(CHAT)[-1]["text"]
    assert answer.startswith(f"Step one done.\n\n{note}"), answer
    assert [r["update_id"] for r in stack.runs()] == [450]
    assert stack.dead_letters() == []
    stack.post(update(451, chat_id=CHAT, text="/cost", user_id=79))
    stack.drain(stack.consumer())
    assert "You, today: $0.01 of $0.05" in stack.replies(CHAT)[-1]["text"]


def test_a_limit_stop_whose_notice_telegram_fails_to_take_is_not_run_and_paid_again(
    stack, monkeypatch
) -> None:
    """Telegram fails (5xx past the local retries) as the user is told the per-turn cap stopped
    the run. The record is not retried: its run is not recorded, so a retry would make it again,
    paid again (up to MAX_TURN_COST_USD each time) for the same cap to stop it. The notice is
    only logged as not sent, as a failure's notice is; the cost counts once."""
    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.05")
    stack.telegram.inject("sendMessage", TelegramFault(502, "Bad Gateway"), times=5)
    stack.post(update(460, chat_id=CHAT, text="limit:max_budget", user_id=80))
    with capture_logs() as logs:
        responses = stack.drain(stack.consumer())

    assert [r["update_id"] for r in stack.runs()] == [460]  # paid once
    assert all(not r["batchItemFailures"] for r in responses) and stack.receive() == []
    assert stack.dead_letters() == []
    [warning] = [entry for entry in logs if entry["event"] == "limit_notice_not_sent"]
    assert warning["limit"] == "max_budget"
    stack.post(update(461, chat_id=CHAT, text="/cost", user_id=80))
    stack.drain(stack.consumer())
    assert "You, today: $0.01 of $0.05" in stack.replies(CHAT)[-1]["text"]


def test_a_limit_stop_whose_notice_meets_a_refused_bot_token_is_not_run_and_paid_again(
    stack, monkeypatch
) -> None:
    """Telegram refuses the bot token (a /revoke before the new token is in SSM) as the user is
    told the per-turn cap stopped the run. A refused answer is tried again, as it is replayed;
    this run is not recorded, so a retry would make it again, paid again for the same cap to
    stop it (and a dead letter's redrive too). The operator is told which parameter to fix; the
    notice is logged as not sent, the record acknowledged, the cost counted once."""
    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.05")
    stack.telegram.inject("sendMessage", TelegramFault(401, "Unauthorized"), times=50)
    stack.post(update(470, chat_id=CHAT, text="limit:max_budget", user_id=81))
    with capture_logs() as logs:
        responses = stack.drain(stack.consumer())

    assert [r["update_id"] for r in stack.runs()] == [470]  # paid once
    assert all(not r["batchItemFailures"] for r in responses) and stack.receive() == []
    assert stack.dead_letters() == []
    events = [entry["event"] for entry in logs]
    assert "config.invalid" in events and "limit_notice_not_sent" in events
    stack.telegram.clear_faults()
    stack.post(update(471, chat_id=CHAT, text="/cost", user_id=81))
    stack.drain(stack.consumer())
    assert "You, today: $0.01 of $0.05" in stack.replies(CHAT)[-1]["text"]
