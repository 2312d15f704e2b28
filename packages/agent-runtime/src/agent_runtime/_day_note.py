"""A conversation kept for weeks: the model reads today's date (the CLI's prompt says it) but
not when each earlier message was sent, so "what did I ask you last week?" had no answer and a
"tomorrow" of ten days ago read as tomorrow. The first message of a new day (UTC) in a
conversation says the day it was sent and the day of the conversation's last answer, so every
message of the history can be dated. Decided: once a day, not a stamp on every message (tokens on
every turn for what a day's mark tells as well); a conversation's first message has none (until
a later day's note dates it, today's date in the CLI's prompt does)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_NOTE = re.compile(
    r"\(From the bot, not the user: the message below was sent on [^()]*\(UTC\); "
    r"the conversation above was last answered on [^()]*\.\)\n\n"
)


def with_day_note(prompt: str, *, sent_at_epoch_s: float, last_answer_epoch_s: float | None) -> str:
    """``prompt`` after a note naming the day it was sent and the day of the conversation's
    last answer (``last_answer_epoch_s``), when those are different days; unchanged otherwise
    (a new conversation: None; a button press: no message)."""
    if not prompt or last_answer_epoch_s is None:
        return prompt
    sent = datetime.fromtimestamp(sent_at_epoch_s, UTC)
    before = datetime.fromtimestamp(last_answer_epoch_s, UTC)
    if sent.date() <= before.date():
        return prompt
    note = (
        f"(From the bot, not the user: the message below was sent on {sent:%A %Y-%m-%d} (UTC); "
        f"the conversation above was last answered on {before:%A %Y-%m-%d}.)"
    )
    return f"{note}\n\n{prompt}"


def without_day_note(prompt: str) -> str:
    """``prompt`` without its day note: the conversation it dated turned out gone from the store,
    so the turn begins a new one, whose first message has none (there is no "above")."""
    return _NOTE.sub("", prompt, count=1)
