"""What one turn cost: from the CLI's running total of the SDK session it continued, or, for a
run killed before its result, from the usage of every model call the proxy saw."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from session_core import get_logger

log = get_logger(__name__)


def turn_cost_usd(
    running_total_usd: float | None,
    *,
    session_id: str | None,
    resumed_id: str | None,
    resumed_total_usd: float,
) -> float:
    """The cost of the run that just ended.

    ``ResultMessage.total_cost_usd`` is the SDK session's running total (the CLI restores it
    from the transcript on resume), so a turn of the session we resumed costs the difference
    from the total recorded after its previous turn; a new SDK session costs its whole total.
    A total below the recorded one (the CLI lost count) is counted whole, never negative.
    """
    total = float(running_total_usd or 0.0)
    if session_id is None or session_id != resumed_id:
        return total
    if total < resumed_total_usd:
        log.warning("cost.running_total_went_back", total_usd=total, recorded_usd=resumed_total_usd)
        return total
    return total - resumed_total_usd


class TokenPrices(NamedTuple):
    """USD per million tokens (``web_search``: USD per search)."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    web_search: float = 0.01


# The list prices the bundled CLI (2.1.x) prices its calls with, by model id prefix: a run
# killed before its result is priced here from the usage the model proxy saw, and comes to
# what the CLI would have said. Longest prefix wins.
_TIER_15_75 = TokenPrices(15, 75, 18.75, 30, 1.5)
PRICES: dict[str, TokenPrices] = {
    "claude-3-5-haiku": TokenPrices(0.8, 4, 1, 1.6, 0.08),
    "claude-haiku-4-5": TokenPrices(1, 5, 1.25, 2, 0.1),
    "claude-haiku-5-5": TokenPrices(0.1, 0.5, 0.125, 0.2, 0.01),
    "claude-3-5-sonnet": TokenPrices(3, 15, 3.75, 6, 0.3),
    "claude-3-7-sonnet": TokenPrices(3, 15, 3.75, 6, 0.3),
    "claude-sonnet-4": TokenPrices(3, 15, 3.75, 6, 0.3),
    "claude-sonnet-5": TokenPrices(2, 10, 2.5, 4, 0.2),
    "claude-sonnet-5-5": TokenPrices(2, 10, 2.5, 4, 0.1),
    "claude-opus-4": _TIER_15_75,
    "claude-opus-4-5": TokenPrices(5, 25, 6.25, 10, 0.5),
    "claude-opus-4-6": TokenPrices(5, 25, 6.25, 10, 0.5),
    "claude-opus-4-7": TokenPrices(5, 25, 6.25, 10, 0.5),
    "claude-opus-4-8": TokenPrices(5, 25, 6.25, 10, 0.5),
    "claude-opus-5": TokenPrices(5, 25, 6.25, 10, 0.5),
    "claude-opus-5-5": TokenPrices(4, 20, 5, 8, 0.2),
    "claude-fable-5": TokenPrices(10, 50, 12.5, 20, 1),
    "claude-fable-5-1": TokenPrices(10, 50, 12.5, 20, 0.25),
    "claude-fable-5-2": TokenPrices(8, 40, 10, 16, 0.2),
    "claude-mythos-5": TokenPrices(10, 50, 12.5, 20, 1),
    "claude-mythos-5-1": TokenPrices(10, 50, 12.5, 20, 0.25),
    "claude-mythos-5-2": TokenPrices(8, 40, 10, 16, 0.2),
}
# A model not in the table is priced as the dearest one: a guess may only overstate a bill.
UNKNOWN_MODEL_PRICES = _TIER_15_75
# The API's "us" inference geography costs this much more (the CLI applies it too).
_US_GEO_FACTOR = 1.1
_BEDROCK_ID = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic\.")


def prices_for(model: str) -> TokenPrices:
    """The prices of ``model`` (an Anthropic or Bedrock model id, with or without a date or a
    version suffix)."""
    name = _BEDROCK_ID.sub("", model.strip().lower().rsplit("/", 1)[-1])
    best = max((prefix for prefix in PRICES if name.startswith(prefix)), key=len, default=None)
    if best is None:
        log.warning("cost.unknown_model_priced_as_dearest", model=model[:80])
        return UNKNOWN_MODEL_PRICES
    return PRICES[best]


def call_cost_usd(model: str, usage: dict[str, Any]) -> float:
    """What one model call cost, from the ``usage`` object of its response (the Messages
    API's shape: input, output, cache write (5 min / 1 h) and cache read tokens, web searches)."""
    prices = prices_for(model)

    def tokens(*path: str) -> float:
        value: Any = usage
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        return float(value) if isinstance(value, int | float) else 0.0

    cache_write = tokens("cache_creation_input_tokens")
    one_hour = min(tokens("cache_creation", "ephemeral_1h_input_tokens"), cache_write)
    cost = (
        tokens("input_tokens") * prices.input
        + tokens("output_tokens") * prices.output
        + (cache_write - one_hour) * prices.cache_write_5m
        + one_hour * prices.cache_write_1h
        + tokens("cache_read_input_tokens") * prices.cache_read
    ) / 1e6
    if usage.get("inference_geo") == "us":
        cost *= _US_GEO_FACTOR
    return cost + tokens("server_tool_use", "web_search_requests") * prices.web_search
