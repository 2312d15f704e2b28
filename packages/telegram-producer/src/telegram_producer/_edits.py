"""Which edited message starts a turn: a group message that did not address the bot until its
sender edited it to (an @mention added, as ``_mentions`` reads them, or a reply to the bot).
Pure, like ``decide``; whether the message was queued already is the webhook's to ask."""

from __future__ import annotations

import msgspec

from ._config import ProducerConfig
from ._routing import Decision, decide
from ._updates import Update

# An edit this long after its message is not answered: the conversation has moved on, and an
# answer out of the blue to an old message would puzzle the group (README "Decided:").
EDIT_ANSWERED_WITHIN_S = 3_600


def decide_edit(update: Update, config: ProducerConfig, *, now: float = 0.0) -> Decision:
    """The turn an ``edited_message`` update starts in a group or topic (its ``message`` keeps
    the original's id, so the answer replies to it), or why it starts none."""
    edited = update.edited_message
    assert edited is not None
    if edited.chat.type not in ("group", "supergroup"):
        return Decision(ignored="edited_message")  # a private message was answered as sent
    if edited.media_group_id is not None:
        # A part of an album may have been answered with its album's addressed part.
        return Decision(ignored="edited_message")
    edited_at = edited.edit_date or int(now)
    if edited.date and edited_at - edited.date > EDIT_ANSWERED_WITHIN_S:
        return Decision(ignored="edit long after its message")
    decision = decide(Update(update_id=update.update_id, message=edited), config, now=now)
    message = decision.message
    if message is None or message.kind not in ("message", "unsupported"):
        return Decision(ignored=decision.ignored or "edited_message")
    # Answered alone: no paste or forward of its sender follows an edit.
    return Decision(
        message=msgspec.structs.replace(message, album_id=None, may_be_comment=False, addressed_at=edited_at)
    )
