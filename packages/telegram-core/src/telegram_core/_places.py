"""How the bot names the conversation a message belongs to, in what it says: a forum topic is
one of its own (its own session, grants and settings), apart from the chat's other topics."""

from __future__ import annotations


def this_place(thread_id: int, *, forum: bool = False) -> str:
    """ "this topic" in a forum topic (``thread_id`` of the session key), the General topic
    included (``forum``: the chat is a forum; General's ``thread_id`` is 0), else "this chat"."""
    return "this topic" if thread_id or forum else "this chat"


def nothing_running(where: str) -> str:
    """The answer to a /stop that finds no turn of the conversation ``where`` names (the
    producer's, when nothing runs; the consumer's, for a /stop that waited in the queue)."""
    return f"Nothing is running in {where} right now."
