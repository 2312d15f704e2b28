"""A chat whose history expired: ``SessionTtlDays`` without a message (the TTL in force: a
transcript written under a longer one may still read), though the registry may still name its
session until DynamoDB's lagging TTL sweep.
The turn starts a new conversation and the agent is told (decided: told, so the user hears
that the earlier conversation is gone instead of an agent that silently knows nothing).
Decided: the silence is measured to when the message was sent, not to when its turn runs: a
message sent in time but answered after the TTL (a queue backlog, retries, Telegram
redelivering) goes on with the conversation, read as it stood then (``transcripts_read_as_of``;
storage keeps it a day past the TTL at least, so one that waited longer may find it gone)."""

from __future__ import annotations

from typing import Literal

from session_core import TurnRequest, counted, longest_read_past_expiry_s

# A chat's history as a turn finds it: live; expired when its message was sent (a new
# conversation, the agent told); or expired only since, so read as of the sending, but a
# history storage no longer holds (whole or in part) expired all the same.
HistoryAge = Literal["live", "expired", "expired_since_sent"]


def message_arrived_at(request: TurnRequest, now: float) -> float:
    """When the message ``request`` answers was sent (the channel's clock), or ``now`` when
    the channel did not say (a button press); never later than ``now`` (clocks differ), nor
    earlier than storage reads a history past its expiry: a message that waited longer finds
    its history gone, and is told so like any expired chat."""
    sent = request.sent_at_epoch_s
    return now if not sent else min(now, max(float(sent), now - longest_read_past_expiry_s()))


def with_expired_history_note(prompt: str, retention_days: int) -> str:
    """``prompt`` after a note to the agent that the chat's earlier conversation expired."""
    note = (
        f"(From the bot, not the user: this chat had no message for {counted(retention_days, 'day')}, so "
        "its earlier conversation has expired and you no longer have it; this message starts a "
        "new one. Tell the user so in one short sentence, and if they refer to something said "
        "before, ask them to tell you again.)"
    )
    return f"{note}\n\n{prompt}"
