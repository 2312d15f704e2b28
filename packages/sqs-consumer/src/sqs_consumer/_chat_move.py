"""A group upgraded to a supergroup keeps its conversation under its new chat id."""

from __future__ import annotations

from session_core import SessionKey, get_logger
from telegram_core import CHAT_SETTINGS_SK, InboundMessage

from ._deps import ConsumerDeps

log = get_logger(__name__)


def move_conversation(msg: InboundMessage, key: SessionKey, deps: ConsumerDeps) -> None:
    """Carry the conversation, settings, grants and this period's spending of the group
    ``msg.moved_from_chat_id`` over to ``key`` (the supergroup it became). Raises
    LeaseHeldError (retryable) while a turn of the group still runs: the record waits, and so
    do the supergroup's messages queued behind it. Repeating it changes nothing."""
    assert msg.moved_from_chat_id is not None
    old = SessionKey(tenant=key.tenant, chat_id=msg.moved_from_chat_id, thread_id=key.thread_id)
    deps.registry.move_chat(old, key, also=(CHAT_SETTINGS_SK,))
    if deps.budgets is not None:
        deps.budgets.carry_chat_spend(from_chat=old.chat_id, to_chat=key.chat_id)
