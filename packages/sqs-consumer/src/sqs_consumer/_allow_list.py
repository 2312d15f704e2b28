"""The allow-list asked again when a queued message's turn comes. The producer let the message
in, but the operator may have taken its sender (or its chat) off ALLOWED_USER_IDS /
ALLOWED_CHAT_IDS since, while it waited behind a slow turn or an outage: the model must not be
paid to answer someone no longer allowed. A retry whose turn ran already is let through: the
model was paid, and its replay (no second run) counts that cost and delivers what was paid for."""

from __future__ import annotations

from session_core import MessageDecodeError, SessionKey, SessionRegistry, StorageError, get_logger
from telegram_core import InboundMessage, MovedChats, on_allow_list

from ._config import ConsumerConfig

log = get_logger(__name__)


class AllowList:
    """Whether a queued message may still be answered; ``moved_chats``: the supergroups
    allowed as the listed groups they were (telegram_core.MovedChats; None: none are);
    ``registry``: where a retry's turn, run already, is found."""

    def __init__(
        self, config: ConsumerConfig, moved_chats: MovedChats | None, registry: SessionRegistry
    ) -> None:
        self._config = config
        self._moved_chats = moved_chats
        self._registry = registry

    def still_allows(self, msg: InboundMessage, key: SessionKey, *, retry: bool) -> bool:
        """A person's message (a turn, a command, a "not supported" notice) passes as the
        producer's check would now, or, on a ``retry`` (an earlier try may have run its turn),
        when its turn's answer is recorded; a press the producer decided (an approval, which
        an approver off the lists may answer) and a chat's move always do."""
        if msg.kind not in ("message", "unsupported") or self._on_the_lists(msg):
            return True
        return retry and self._answered_already(msg, key)

    def _on_the_lists(self, msg: InboundMessage) -> bool:
        config = self._config
        if on_allow_list(
            user_id=msg.user_id,
            chat_id=msg.chat_id,
            allowed_user_ids=config.allowed_user_ids,
            allowed_chat_ids=config.allowed_chat_ids,
        ):
            return True
        if self._moved_chats is None or not config.allowed_chat_ids:
            return False
        try:
            return self._moved_chats.allowed_as_moved(config.tenant, msg.chat_id, config.allowed_chat_ids)
        except StorageError as exc:
            # The producer let it in moments ago: a failed read does not drop a message.
            log.warning("moved_chat_lookup_failed", error=str(exc)[:200])
            return True

    def _answered_already(self, msg: InboundMessage, key: SessionKey) -> bool:
        # Dropped, the paid run would count in no budget (the try that ran it lost the
        # runtime's reply, or failed to deliver it, before settling) and its answer be lost.
        try:
            return self._registry.get_turn_result(key, msg.update_id) is not None
        except MessageDecodeError:
            return True  # recorded, in a shape this release does not read: its replay says more
        except StorageError as exc:
            log.warning("answered_turn_lookup_failed", error=str(exc)[:200])
            return True  # as the moved-chat lookup: a failed read does not drop a message
