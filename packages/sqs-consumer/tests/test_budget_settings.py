"""Budget settings as the operator writes them: a bad one is refused with its name and what
is wrong with it."""

from __future__ import annotations

import pytest
from session_core import ConfigError
from sqs_consumer._config import budget_caps_from_env


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("five", "must be an amount in USD such as 5 or 0.50, got 'five'"),
        ("nan", "must be an amount in USD such as 5 or 0.50, got 'nan'"),
        ("-1", "must be 0 (no cap) or a positive amount in USD, got '-1'"),
        ("2000000000", "must be below 1000000000 USD (0 = no cap), got '2000000000'"),
        ("inf", "must be below 1000000000 USD (0 = no cap), got 'inf'"),
    ],
)
def test_a_bad_budget_is_refused_naming_the_setting_and_the_fault(raw: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        budget_caps_from_env({"BUDGET_USER_MONTHLY_USD": raw})
    assert str(refused.value) == f"setting BUDGET_USER_MONTHLY_USD: {says}"


def test_zero_however_spelt_means_no_cap_and_an_amount_is_read_as_written() -> None:
    caps = budget_caps_from_env({"BUDGET_CHAT_DAILY_USD": "0.00", "MAX_TURN_COST_USD": " 0.50 "})
    assert (caps.chat_daily_usd, caps.turn_usd, caps.any_period_cap) == (None, 0.5, False)
