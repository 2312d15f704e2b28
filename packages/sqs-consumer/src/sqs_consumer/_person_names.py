"""How the bot's own messages name a person: who answered an approval, who granted a rule, who
sent the message or the /new that dropped a waiting call, who stopped someone else's turn.

Each is the name the producer recorded (its ``shown_name``: the @username, which nobody else
can have, else the first name), shown as written whatever the message's parse mode. Telegram
makes any "@username" in a message a mention that notifies its owner, who did nothing to be
called: a word joiner (U+2060, which shows nothing) after each "@" leaves the name as it reads
and makes no mention.
"""

from __future__ import annotations

from ._render import escape_html, escape_markdown, shortened

# A first name holds at most 64 characters; a chat's title (an anonymous admin's group) more.
MAX_NAME_CHARS = 64
_WORD_JOINER = "\u2060"


def person_html(name: str | None) -> str:
    """``name`` ("someone" when unknown) as Telegram HTML that notifies nobody."""
    return escape_html(_without_mentions(name))


def person_markdown(name: str | None) -> str:
    """``name`` ("someone" when unknown) as Markdown that shows it as written and notifies
    nobody."""
    return escape_markdown(_without_mentions(name))


def _without_mentions(name: str | None) -> str:
    return shortened(name or "someone", MAX_NAME_CHARS).replace("@", "@" + _WORD_JOINER)
