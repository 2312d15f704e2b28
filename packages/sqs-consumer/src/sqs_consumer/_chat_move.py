"""A group upgraded to a supergroup keeps its conversation under its new chat id."""

from __future__ import annotations

from session_core import LeaseHeldError, SessionKey, get_logger
from telegram_core import CHAT_SETTINGS_SK, InboundMessage

from ._deps import ConsumerDeps
from ._errors import DeferredError
from ._timing import ConsumerTiming, RemainingTimeMs

log = get_logger(__name__)


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
    polls = 0
    while True:
        try:
            deps.registry.move_chat(old, key, also=(CHAT_SETTINGS_SK,))
            break
        except LeaseHeldError as exc:
            if remaining() / 1000 - timing.delivery_reserve_s < timing.busy_poll_s:
                raise DeferredError(
                    "busy", f"a turn of the group held its session through {polls} polls"
                ) from exc
            if not polls:
                log.info("chat_move_waiting", moved_from_chat_id=old.chat_id, poll_s=timing.busy_poll_s)
            polls += 1
            deps.sleep(timing.busy_poll_s)
    if deps.budgets is not None:
        deps.budgets.carry_chat_spend(from_chat=old.chat_id, to_chat=key.chat_id)
