"""A chat whose history expired: ``SessionTtlDays`` without a message (the TTL in force: a
transcript written under a longer one may still read), though the registry may still name its
session until DynamoDB's lagging TTL sweep.
The turn starts a new conversation and the agent is told (decided: told, so the user hears
that the earlier conversation is gone instead of an agent that silently knows nothing)."""

from __future__ import annotations


def with_expired_history_note(prompt: str, retention_days: int) -> str:
    """``prompt`` after a note to the agent that the chat's earlier conversation expired."""
    note = (
        f"(From the bot, not the user: this chat had no message for {retention_days} days, so "
        "its earlier conversation has expired and you no longer have it; this message starts a "
        "new one. Tell the user so in one short sentence, and if they refer to something said "
        "before, ask them to tell you again.)"
    )
    return f"{note}\n\n{prompt}"
