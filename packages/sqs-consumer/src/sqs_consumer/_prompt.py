"""What the agent is asked for a message (never shown to the user)."""

from __future__ import annotations

from telegram_core import InboundMessage

# The prompt of a turn whose message is only files.
FILE_ONLY_PROMPT = "The user sent the attached file(s) without a message."


def prompt_of(msg: InboundMessage, *, staged: bool) -> str:
    """What the message refers to (its ``context``: the message it replies to, where it was
    forwarded from), then its text; ``staged``: files came with it (files alone say so)."""
    own = msg.text or (FILE_ONLY_PROMPT if staged and not msg.context else "")
    return "\n\n".join(part for part in (msg.context, own) if part)
