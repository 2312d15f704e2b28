"""Budget caps as a user meets them: the stack's runtime stub charges $0.01 per turn."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from agentbot_testing.telegram_support import update

CHAT = 501
NOON = datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_chat_over_its_daily_cap_gets_one_message_and_no_turn_until_midnight(
    stack, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("BUDGET_CHAT_DAILY_USD", "0.02")
    monkeypatch.setenv("BUDGET_DEPLOYMENT_DAILY_USD", "0.025")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    clock = Clock(NOON)
    consumer = stack.consumer(clock=clock)
    for update_id in (300, 301, 302):
        stack.post(update(update_id, text=f"question {update_id}"))
    responses = stack.drain(consumer)

    texts = [m["text"] for m in stack.replies(CHAT)]
    assert texts[:2] == ["Answer to: question 300", "Answer to: question 301"]
    assert texts[2] == (
        "This chat has reached its daily budget of $0.02 (spent $0.02), so I did not send this "
        "message to the AI model. The budget resets at 00:00 UTC, in 12 h 0 min."
    )
    assert [r["update_id"] for r in stack.runs()] == [300, 301]  # no model call for the third
    assert all(not r["batchItemFailures"] for r in responses) and stack.receive() == []  # not retried
    # The deployment's daily spend went to the alarm's metric: 0.01 then 0.02 of 0.025.
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["DeploymentDailySpendPercent"] for m in metrics] == [40.0, 80.0]
    assert metrics[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Agentbot"

    stack.post(update(303, text="/cost"))
    stack.drain(consumer)
    report = stack.replies(CHAT)[-1]["text"]
    assert "This chat, today: $0.02 of $0.02" in report
    assert "You, today: $0.02 no cap" in report and "You, this month: $0.02 no cap" in report
    assert "This bot (everyone), today: $0.02 of $0.0250" in report

    clock.now += 12 * 3600  # midnight UTC: a new day for the chat's cap
    monkeypatch.setenv("BUDGET_DEPLOYMENT_DAILY_USD", "")
    stack.post(update(304, text="a new day"))
    stack.drain(stack.consumer(clock=clock))
    assert stack.replies(CHAT)[-1]["text"] == "Answer to: a new day"


def test_a_user_over_the_monthly_cap_is_refused_in_every_chat(stack, monkeypatch) -> None:
    monkeypatch.setenv("BUDGET_USER_MONTHLY_USD", "0.01")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    consumer = stack.consumer(clock=Clock(NOON))
    stack.post(update(310, text="first", chat_id=601, user_id=77))
    stack.drain(consumer)
    stack.post(update(311, text="second", chat_id=602, user_id=77))
    stack.post(update(312, text="someone else", chat_id=603, user_id=78))
    stack.drain(consumer)
    assert stack.replies(601)[0]["text"] == "Answer to: first"
    assert stack.replies(602)[0]["text"].startswith(
        "You have reached your monthly budget of $0.01 (spent $0.01), so I did not send this message"
    )
    assert "resets at 1 January 00:00 UTC, in 29 d 12 h" in stack.replies(602)[0]["text"]
    assert stack.replies(603)[0]["text"] == "Answer to: someone else"
    assert [r["update_id"] for r in stack.runs()] == [310, 312]


def test_a_turn_whose_answer_cannot_be_delivered_still_counts(stack, monkeypatch) -> None:
    """The model was paid as soon as the turn ran. A user who blocks the bot right after
    sending (403), or a Telegram outage that makes the record come back as a replay, must not
    get turns that count against no cap."""
    from local_stack import TelegramFault
    from session_core import BudgetCaps, BudgetLedger

    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.05")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    clock = Clock(NOON)
    consumer = stack.consumer(clock=clock)
    blocked = TelegramFault(403, "Forbidden: bot was blocked by the user")
    for update_id in (400, 401):
        stack.telegram.inject("sendMessage", blocked, times=5)
        stack.post(update(update_id, text=f"question {update_id}", user_id=77))
        stack.drain(consumer)
        stack.telegram.clear_faults()
    stack.telegram.inject("sendMessage", TelegramFault(502, "Bad Gateway"), times=10)  # one attempt
    stack.post(update(402, text="question 402", user_id=77))
    stack.drain(consumer)  # delivered on the record's retry, which replays the recorded answer

    ledger = BudgetLedger(
        dynamodb=stack.aws.dynamodb,
        table=stack.aws.resources.table,
        caps=BudgetCaps(user_daily_usd=0.05),
        tenant="default",
        clock=clock,
    )
    spent = {(s.scope, s.period): s.spent_usd for s in ledger.spending(chat_id=CHAT, user_id=77)}
    assert [r["update_id"] for r in stack.runs()] == [400, 401, 402]  # three runs paid for
    assert stack.replies(CHAT)[-1]["text"] == "Answer to: question 402"
    assert spent[("user", "day")] == spent[("chat", "day")] == 0.03


def test_a_cap_taken_up_by_running_turns_is_not_called_reached_until_midnight(stack, monkeypatch) -> None:
    """Other users' turns still running hold the per-turn cap on the bot's daily budget. A
    user refused meanwhile must not read that the budget is reached and resets in 12 hours
    (with "spent" below the cap): it frees as those turns end."""
    from session_core import BudgetCaps, BudgetHold, BudgetLedger

    monkeypatch.setenv("BUDGET_DEPLOYMENT_DAILY_USD", "0.03")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    clock = Clock(NOON)
    others = BudgetLedger(
        dynamodb=stack.aws.dynamodb,
        table=stack.aws.resources.table,
        caps=BudgetCaps(deployment_daily_usd=0.03, turn_usd=0.01),
        tenant="default",
        clock=clock,
    )
    running = [others.hold(chat_id=700 + n, user_id=90 + n) for n in range(3)]
    consumer = stack.consumer(clock=clock)
    stack.post(update(500, text="hello"))
    stack.drain(consumer)

    assert stack.replies(CHAT)[-1]["text"] == (
        "This bot's shared daily budget of $0.03 is held for answers still being written "
        "(spent $0.00 so far), so I did not send this message to the AI model. Try again when "
        "they finish, in 20 minutes at the latest."
    )
    for hold in running:
        assert isinstance(hold, BudgetHold)
        others.settle(hold, 0.001)
    stack.post(update(501, text="hello again"))
    stack.drain(consumer)
    assert stack.replies(CHAT)[-1]["text"] == "Answer to: hello again"


def test_a_cap_held_by_a_crashed_consumers_turn_says_when_its_hold_lapses(stack, monkeypatch) -> None:
    """A consumer died between its hold and settling: the hold fills the user's cap until its
    deadline (20 minutes). Told "a few minutes", the user came back and was refused again;
    they are told the real wait, rounded up to the minute."""
    from session_core import BudgetCaps, BudgetHold, BudgetLedger

    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.01")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    clock = Clock(NOON)
    crashed = BudgetLedger(
        dynamodb=stack.aws.dynamodb,
        table=stack.aws.resources.table,
        caps=BudgetCaps(user_daily_usd=0.01, turn_usd=0.01),
        tenant="default",
        clock=clock,
    ).hold(chat_id=702, user_id=77)
    assert isinstance(crashed, BudgetHold)  # never settled
    consumer = stack.consumer(clock=clock)
    clock.now += 14 * 60 + 30
    stack.post(update(520, text="hello", user_id=77))
    stack.drain(consumer)
    assert stack.replies(CHAT)[-1]["text"] == (
        "Your daily budget of $0.01 is held for answers still being written (spent $0.00 so far), "
        "so I did not send this message to the AI model. Try again when they finish, in 6 minutes "
        "at the latest."
    )
    clock.now += 5 * 60
    stack.post(update(521, text="hello again", user_id=77))
    stack.drain(consumer)
    assert stack.replies(CHAT)[-1]["text"].endswith("Try again when they finish, in 1 minute at the latest.")
    clock.now += 30  # the hold's deadline: released, the message admitted
    stack.post(update(522, text="and now", user_id=77))
    stack.drain(consumer)
    assert stack.replies(CHAT)[-1]["text"] == "Answer to: and now"
    assert [r["update_id"] for r in stack.runs()] == [522]


def test_cost_names_the_per_turn_cap_when_it_is_the_only_limit(stack, monkeypatch) -> None:
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.5")
    for name in ("CHAT", "USER", "DEPLOYMENT"):
        for period in ("DAILY", "MONTHLY"):
            monkeypatch.setenv(f"BUDGET_{name}_{period}_USD", "")
    stack.post(update(320, text="/cost"))
    stack.drain(stack.consumer())
    assert stack.replies(CHAT)[-1]["text"] == (
        "No daily or monthly budgets are set for this bot. One answer may cost at most $0.50: "
        "the AI model stops there. /status shows this chat's cost."
    )


def test_cost_names_the_per_turn_cap_beside_the_budgets(stack, monkeypatch) -> None:
    monkeypatch.setenv("BUDGET_CHAT_DAILY_USD", "1")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.25")
    stack.post(update(321, text="/cost"))
    stack.drain(stack.consumer(clock=Clock(NOON)))
    report = stack.replies(CHAT)[-1]["text"]
    assert "This chat, today: $0.00 of $1.00" in report
    assert report.endswith("One answer may cost at most $0.25: the AI model stops there.")


def test_a_turn_whose_runtime_answer_was_lost_on_the_way_back_counts_once(stack, monkeypatch) -> None:
    """The runtime ran and recorded the turn, but its answer never reached the consumer (the
    connection dropped): the record's retry replays the recorded answer. The model was paid
    once, so the turn counts once: not nothing (the first attempt never settled), not twice."""
    from agentbot_testing import AwsFault, FaultProxy

    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.05")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    clock = Clock(NOON)
    lost = AwsFault("lambda:Invoke", times=1, forward_first=True)
    with FaultProxy(stack.runtime.endpoint, [lost]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", proxy.endpoint)
        stack.post(update(410, text="question 410", user_id=77))
        stack.drain(stack.consumer(clock=clock))
    assert proxy.failed == ["lambda:Invoke"]
    assert [r["update_id"] for r in stack.runs()] == [410]  # one model run, replayed on the retry
    assert stack.replies(CHAT)[-1]["text"] == "Answer to: question 410"

    stack.post(update(411, text="/cost", user_id=77))
    stack.drain(stack.consumer(clock=clock))
    report = stack.replies(CHAT)[-1]["text"]
    assert "This chat, today: $0.01 no cap" in report
    assert "You, today: $0.01 of $0.05" in report


def test_a_turn_the_runtime_never_ran_holds_nothing_back(stack, monkeypatch) -> None:
    """Lambda refused the invoke (over the runtime's concurrency): nothing ran, so the turn's
    hold goes back at once. Kept for its 20 minutes, it made the next message read that the
    budget "is held for answers still being written" while nothing was being written."""
    from agentbot_testing import AwsFault, FaultProxy

    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.02")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    clock = Clock(NOON)
    throttled = AwsFault(
        "lambda:Invoke", times=1, status=429, code="TooManyRequestsException", message="Rate exceeded"
    )
    with FaultProxy(stack.runtime.endpoint, [throttled]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", proxy.endpoint)
        consumer = stack.consumer(clock=clock)
        stack.post(update(420, text="question 420", user_id=77))
        stack.drain(consumer)
        stack.post(update(421, text="question 421", user_id=77))
        stack.drain(consumer)
    assert proxy.failed == ["lambda:Invoke"]
    assert [m["text"] for m in stack.replies(CHAT)] == ["Answer to: question 420", "Answer to: question 421"]


def test_a_turn_the_per_turn_cap_stopped_before_it_wrote_is_answered_counted_and_not_dead_lettered(
    stack, monkeypatch
) -> None:
    """MAX_TURN_COST_USD stopped the run before it wrote a word: the operator's own cap at
    work, like a daily budget's refusal. The user reads why, the cost counts once, and the
    message is neither retried nor dead-lettered: the dead-letter alarm is not the operator's
    to answer for it, and a `dlq redrive` would pay the model again for a run the cap stops again."""
    monkeypatch.setenv("BUDGET_USER_DAILY_USD", "0.05")
    monkeypatch.setenv("MAX_TURN_COST_USD", "0.01")
    clock = Clock(NOON)
    stack.post(update(430, text="limit:max_budget", user_id=77))
    stack.drain(stack.consumer(clock=clock))

    assert stack.replies(CHAT)[-1]["text"] == (
        "I stopped because answering this would cost more than one message may spend. "
        "Please ask for a smaller part."
    )
    assert [r["update_id"] for r in stack.runs()] == [430]  # not retried
    assert stack.dead_letters() == []
    stack.post(update(431, text="/cost", user_id=77))
    stack.drain(stack.consumer(clock=clock))
    assert "You, today: $0.01 of $0.05" in stack.replies(CHAT)[-1]["text"]
