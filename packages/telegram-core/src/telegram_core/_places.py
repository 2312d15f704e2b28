"""How the bot names the conversation a message belongs to, in what it says: a forum topic is
one of its own (its own session, grants and settings), apart from the chat's other topics."""

from __future__ import annotations


def this_place(thread_id: int) -> str:
    """ "this topic" in a forum topic (``thread_id`` of the session key), else "this chat"."""
    return "this topic" if thread_id else "this chat"
