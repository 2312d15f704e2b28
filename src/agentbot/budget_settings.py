"""The consumer's budget settings as the operator writes them: the BUDGET_* variables
`agentbot dev` takes from the shell, or a stack's Budget* parameters; read into the caps the
consumer runs with (`agentbot chat`), and the warning `agentbot doctor` and dev give when
period caps have no per-turn cap to bound them."""

from __future__ import annotations

from collections.abc import Mapping

from session_core import BudgetCaps
from sqs_consumer import budget_caps_from_env

from .preflight import ConfigurationProblem

# The stack parameter behind each of the consumer's budget variables (infra/template.yaml).
BUDGET_PARAMETERS = {
    "BUDGET_CHAT_DAILY_USD": "BudgetChatDailyUsd",
    "BUDGET_CHAT_MONTHLY_USD": "BudgetChatMonthlyUsd",
    "BUDGET_USER_DAILY_USD": "BudgetUserDailyUsd",
    "BUDGET_USER_MONTHLY_USD": "BudgetUserMonthlyUsd",
    "BUDGET_DEPLOYMENT_DAILY_USD": "BudgetDeploymentDailyUsd",
    "BUDGET_DEPLOYMENT_MONTHLY_USD": "BudgetDeploymentMonthlyUsd",
    "MAX_TURN_COST_USD": "MaxTurnCostUsd",
}


def budget_caps(parameters: Mapping[str, str] | None, env: Mapping[str, str]) -> BudgetCaps:
    """The caps the consumer runs with: the stack's Budget* parameters (and MaxTurnCostUsd),
    else the BUDGET_* variables (the consumer's own names)."""
    if parameters is None:
        return budget_caps_from_env(env)
    return budget_caps_from_env({var: parameters.get(name, "") for var, name in BUDGET_PARAMETERS.items()})


def turn_cap_missing(caps: BudgetCaps, *, deployed: bool) -> ConfigurationProblem | None:
    """A warning (the bot works) when daily or monthly caps are set without a per-turn cap: a
    running turn then holds nothing against them, so concurrent turns, or one long turn, pass
    them by any amount. Named as the stack's parameters when ``deployed``, else as the
    variables `agentbot dev` takes from the shell."""
    if not caps.any_period_cap or caps.turn_usd is not None:
        return None
    # BUDGET_CHAT_DAILY_USD is BudgetCaps.chat_daily_usd
    variables = [
        var
        for var in BUDGET_PARAMETERS
        if var.startswith("BUDGET_") and getattr(caps, var.removeprefix("BUDGET_").lower()) is not None
    ]
    name = BUDGET_PARAMETERS if deployed else {var: var for var in BUDGET_PARAMETERS}
    setting = name["MAX_TURN_COST_USD"]
    bound = "each running turn holds it against the caps, so together they pass a cap by less than it"
    fix = (
        f"sam deploy --parameter-overrides {setting}=<what one answer may cost, e.g. 0.50>: {bound}"
        if deployed
        else f"export {setting}=<what one answer may cost, e.g. 0.50> and start again: {bound}"
    )
    return ConfigurationProblem(
        setting,
        f"not set while {', '.join(name[var] for var in variables)} cap spending: a running turn holds "
        "nothing against them, so concurrent turns (one user in several chats) or one long turn "
        "overspend them without bound",
        fix,
    )
