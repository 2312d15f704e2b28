"""What users read about budgets (a refused turn, /cost) and the deployment's spend metric."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from session_core import BudgetExceeded, BudgetLedger, BudgetScope, Spend, counted, emit_metric, get_logger

from ._money import usd

log = get_logger(__name__)

# The metric infra/template.yaml alarms on at 80 %.
DEPLOYMENT_DAILY_SPEND_METRIC = "DeploymentDailySpendPercent"

_WHOSE: dict[BudgetScope, tuple[str, str]] = {
    "chat": ("This chat has", "its"),
    "user": ("You have", "your"),
    "deployment": ("This bot has", "its shared"),
}
_BUDGET_OF: dict[BudgetScope, str] = {
    "chat": "This chat's",
    "user": "Your",
    "deployment": "This bot's shared",
}
# An approver answered someone else's call: the held allowance is the asker's, not the
# reader's (the approver's), and the answer waits for anyone's next message here.
_ASKERS_WHOSE = ("The person who asked has", "their")
_ASKERS_BUDGET = "The asker's"
_PERIOD_NAME = {"day": "daily", "month": "monthly"}
# What was not done. A button press is no message; its decision stays in the store and reaches
# the agent with the next admitted turn, so that is what the user is told.
_NOT_SENT = "so I did not send this message to the AI model."
_ANSWER_NOT_SENT = (
    "so I did not pass your answer on to the AI model yet: it goes with your next message "
    "once the budget allows."
)
_OTHERS_ANSWER_NOT_SENT = (
    "so I did not pass the answer on to the AI model yet: it goes with the next message here "
    "that the budgets allow."
)


def refusal_text(
    exceeded: BudgetExceeded, now: float, *, approval_answer: bool = False, for_another: bool = False
) -> str:
    """The one message a user gets instead of a turn: which cap, and when it resets
    (``approval_answer``: the turn was to take an approval button's answer to the agent;
    ``for_another``: an approver's answer to someone else's call)."""
    not_sent = _NOT_SENT
    if approval_answer:
        not_sent = _OTHERS_ANSWER_NOT_SENT if for_another else _ANSWER_NOT_SENT
    askers = for_another and exceeded.scope == "user"
    if exceeded.only_held:
        budget_of = _ASKERS_BUDGET if askers else _BUDGET_OF[exceeded.scope]
        return (
            f"{budget_of} {_PERIOD_NAME[exceeded.period]} budget of "
            f"{usd(exceeded.cap_usd)} is held for answers still being written "
            f"(spent {usd(exceeded.spent_usd)} so far), {not_sent} {_held_wait(exceeded, now)}"
        )
    resets = datetime.fromtimestamp(exceeded.resets_at, UTC)
    when = "00:00 UTC" if exceeded.period == "day" else f"{resets:%-d %B} 00:00 UTC"
    who, whose = _ASKERS_WHOSE if askers else _WHOSE[exceeded.scope]
    return (
        f"{who} reached {whose} {_PERIOD_NAME[exceeded.period]} budget of "
        f"{usd(exceeded.cap_usd)} (spent {usd(exceeded.spent_usd)}), {not_sent} "
        f"The budget resets at {when}, in {_duration(exceeded.resets_at - now)}."
    )


def _held_wait(exceeded: BudgetExceeded, now: float) -> str:
    # Held by a crashed consumer's turn, a cap frees only at the hold's deadline (up to 20
    # minutes): "a few minutes" sent the user back to be refused again. Running turns free it
    # sooner, as they end, hence "at the latest".
    if exceeded.frees_by is None:
        return "Try again in a few minutes."
    minutes = max(1, math.ceil((exceeded.frees_by - now) / 60))
    return f"Try again when they finish, in {counted(minutes, 'minute')} at the latest."


def cost_report(spending: list[Spend], now: float, *, turn_cap_usd: float | None = None) -> str:
    """The /cost reply: each account's spend this period against its cap, then the per-turn
    cap if one is set (Telegram HTML)."""
    names = {"chat": "This chat", "user": "You", "deployment": "This bot (everyone)"}
    lines = []
    for spend in spending:
        period = "today" if spend.period == "day" else "this month"
        cap = "no cap" if spend.cap_usd is None else f"of {usd(spend.cap_usd)}"
        lines.append(f"<b>{names[spend.scope]}</b>, {period}: {usd(spend.spent_usd)} {cap}")
    if not lines:
        return "No spending is counted here."
    lines.append(f"Days and months are UTC; today ends in {_duration(_next_midnight(now) - now)}.")
    if turn_cap_usd is not None:
        lines.append(turn_cap_text(turn_cap_usd))
    return "\n".join(lines)


def no_budgets_text(turn_cap_usd: float | None) -> str:
    """The /cost reply of a bot with no daily or monthly cap (``turn_cap_usd``: MAX_TURN_COST_USD)."""
    if turn_cap_usd is None:
        return "No budgets are set for this bot; /status shows this chat's cost."
    return (
        f"No daily or monthly budgets are set for this bot. {turn_cap_text(turn_cap_usd)} "
        "/status shows this chat's cost."
    )


def turn_cap_text(turn_cap_usd: float) -> str:
    """One sentence naming the per-turn cap (MAX_TURN_COST_USD) as a user meets it."""
    return f"One answer may cost at most {usd(turn_cap_usd)}: the AI model stops there."


def report_deployment_spend(ledger: BudgetLedger, tenant: str) -> None:
    """Emit the deployment's share of its daily cap (percent) for the 80 % alarm."""
    cap = ledger.caps.deployment_daily_usd
    if cap is None:
        return
    try:
        spent = ledger.deployment_daily_spent()
    except Exception as exc:  # a metric must never fail a delivered turn
        log.warning("budget.metric_failed", error_type=type(exc).__name__)
        return
    emit_metric(DEPLOYMENT_DAILY_SPEND_METRIC, round(100 * spent / cap, 3), unit="Percent", tenant=tenant)


def _next_midnight(now: float) -> float:
    return (int(now) // 86_400 + 1) * 86_400


def _duration(seconds: float) -> str:
    # Minutes round up (a wait is never said shorter than it is), but not into days: under a
    # day, "1 d 0 h" would read as a day that ends in a day.
    minutes = max(1, int(seconds + 59) // 60)
    days, rest = divmod(minutes, 1440) if seconds >= 86_400 else (0, minutes)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
