"""A group upgraded to a supergroup keeps its conversation under its new chat id."""

from __future__ import annotations

from session_core import LeaseHeldError, SessionKey
from telegram_core import CHAT_SETTINGS_SK, InboundMessage

from ._busy_wait import BusyWait
from ._deps import ConsumerDeps
from ._timing import ConsumerTiming, RemainingTimeMs


def move_conversation(
    msg: InboundMessage,
    key: SessionKey,
    deps: ConsumerDeps,
    timing: ConsumerTiming,
    remaining: RemainingTimeMs,
) -> None:
    """Carry the conversation, settings, grants and this period's spending of the group
    ``msg.moved_from_chat_id`` over to ``key`` (the supergroup it became). While a turn of the
    group still runs it waits, as a message of a busy chat does, then raises DeferredError
    ("busy": retried, never dead-lettered; the supergroup's messages wait behind it).
    Repeating it changes nothing."""
    assert msg.moved_from_chat_id is not None
    old = SessionKey(tenant=key.tenant, chat_id=msg.moved_from_chat_id, thread_id=key.thread_id)
    wait = BusyWait(timing, deps.sleep)
    while True:
        try:
            deps.registry.move_chat(old, key, also=(CHAT_SETTINGS_SK,))
            break
        except LeaseHeldError:
            wait.pause(remaining() / 1000 - timing.delivery_reserve_s, holder="a turn of the group")
    if deps.budgets is not None:
        deps.budgets.carry_chat_spend(from_chat=old.chat_id, to_chat=key.chat_id)
