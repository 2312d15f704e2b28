"""[H] The Stop button's wire format, written by the consumer (on a group's progress message)
and read by the producer (the ``callback_query`` it sends): one definition for both."""

from __future__ import annotations

STOP_CALLBACK_PREFIX = "stop:"
# Turn ids are Telegram update ids (well inside 64 bits); anything longer was not written by us.
_MAX_TURN_DIGITS = 18


def stop_callback_data(turn_id: int) -> str:
    """``callback_data`` of the Stop button of turn ``turn_id`` (Telegram allows ≤ 64 bytes)."""
    return f"{STOP_CALLBACK_PREFIX}{turn_id}"


def stopped_turn_of(callback_data: str | None) -> int | None:
    """The turn a Stop button's ``callback_data`` names; None when it is not a Stop button
    (-1 for a Stop button without a readable turn: stop whatever runs)."""
    if not callback_data or not callback_data.startswith(STOP_CALLBACK_PREFIX):
        return None
    turn = callback_data[len(STOP_CALLBACK_PREFIX) :]
    # Any client may send any callback_data: only ASCII digits of a plausible length are a
    # turn id ("²" is a digit to str.isdigit but not to int()).
    readable = turn.isascii() and turn.isdigit() and len(turn) <= _MAX_TURN_DIGITS
    return int(turn) if readable else -1
