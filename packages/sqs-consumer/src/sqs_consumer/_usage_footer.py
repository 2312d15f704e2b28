"""The optional line under an answer (/usage on): that turn's tokens and what it cost."""

from __future__ import annotations

from session_core import TurnResult

from ._money import turn_usd


def usage_footer(result: TurnResult) -> str:
    """Markdown for the end of an answer, e.g. "_12,400 tokens in · 310 out · $0.0542_";
    a turn that billed nothing (the offline demo model) says "$0"."""
    usage = result.usage
    tokens_in = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    cost = turn_usd(result.cost_usd)
    cached = f" ({usage.cache_read_input_tokens:,} from cache)" if usage.cache_read_input_tokens else ""
    return f"_{tokens_in:,} tokens in{cached} · {usage.output_tokens:,} out · {cost}_"
