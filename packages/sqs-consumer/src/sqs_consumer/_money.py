"""Amounts of USD as users read them (/status, /cost, a refusal, the usage line)."""

from __future__ import annotations

# Below this a paid amount would round to "$0.0000", which reads as nothing spent.
_SMALLEST_SHOWN = 0.0001


def usd(amount: float) -> str:
    """Cents when the amount is whole cents ("$5.00"), else four decimals ("$0.0250"), thousands
    grouped ("$1,234.50"); a paid amount too small for them reads "under $0.0001", never as
    nothing."""
    if 0 < amount < _SMALLEST_SHOWN / 2:
        return f"under ${_SMALLEST_SHOWN}"
    return f"${amount:,.2f}" if round(amount, 2) == round(amount, 6) else f"${amount:,.4f}"


def turn_usd(amount: float) -> str:
    """What turns cost, to four decimals ("$0.0542", "$1,234.5678"); nothing billed (the demo
    model) says so, and a paid amount too small for four decimals reads "under $0.0001"."""
    if amount <= 0:
        return "$0 (nothing billed)"
    if amount < _SMALLEST_SHOWN / 2:
        return f"under ${_SMALLEST_SHOWN}"
    return f"${amount:,.4f}"
