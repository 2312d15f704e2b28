"""A message answered noticeably late (an outage, a queue behind a slow turn, Telegram
redelivering a failed webhook for up to a day): the agent is told when it was sent, so that
"good morning" or "is the site down right now?" is answered as the old message it is.
Decided: told past LATE_AFTER_S; a prompt answered sooner gets no note (no tokens, no noise).
The age is measured when the turn starts, so every retry of a message says its own age; the
note is not one of the notes a failed attempt's prompt carries over (``_tools_ran``)."""

from __future__ import annotations

from datetime import UTC, datetime

# Past this, "now" in the message may no longer hold: more than a slow turn's usual wait,
# far more than the seconds Telegram's and AWS's clocks may differ by.
LATE_AFTER_S = 300


def with_late_note(prompt: str, *, sent_at_epoch_s: int | None, now_epoch_s: float) -> str:
    """``prompt`` after a note saying when its message was sent, if that was more than
    LATE_AFTER_S before ``now_epoch_s``; unchanged otherwise (and when there is no message:
    a button press's turn)."""
    if not prompt or not sent_at_epoch_s or now_epoch_s - sent_at_epoch_s <= LATE_AFTER_S:
        return prompt
    sent = datetime.fromtimestamp(sent_at_epoch_s, UTC)
    same_day = sent.date() == datetime.fromtimestamp(now_epoch_s, UTC).date()
    at = f"{sent:%H:%M} UTC" if same_day else f"{sent:%H:%M} UTC on {sent:%Y-%m-%d}"
    note = (
        f"(From the bot, not the user: the message below was sent {_age(now_epoch_s - sent_at_epoch_s)} "
        f"ago, at {at}, and reaches you only now. Answer it as the message of then that it is: "
        "what it says of now or today meant that time.)"
    )
    return f"{note}\n\n{prompt}"


def _age(seconds: float) -> str:
    """The age as "12 min", "3 h 12 min" or "1 d 2 h": whole units, rounded down."""
    minutes = int(seconds // 60)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
