"""A group on ALLOWED_CHAT_IDS that Telegram upgrades to a supergroup stays allowed under its
new id (the supergroup keeps the group's conversation too, see session_core's chat moves).

The supergroup's first message names the group it was (``migrate_from_chat_id``); only Telegram
can send it, as the webhook is verified. The producer records the move in the registry table,
one item per supergroup, kept until removed: a chat that is not on the list is allowed while
the group it was still is, so taking the group off the list takes its supergroup off too.
The operator is told to add the new id to the list, which makes the lookup unnecessary.
The consumer reads it too, asking the list again before a queued message's turn.

A lookup is made only for a supergroup not on the list while the list is in use. A move found
is kept for a minute in the container; "not moved" only for a few seconds: the supergroup's
messages reach the webhook together with its move (Telegram sends several updates at once), so
a container can look before another records the move, and must not ignore the supergroup for a
minute after. A stranger's supergroup costs at most one GetItem every few seconds per
container, not one per message.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from session_core import DynamoTable, item_int, number

_SK = "moved_from"
_MOVED_CACHE_S = 60.0  # a move found
_NOT_MOVED_CACHE_S = 5.0  # "not moved": a move may be being recorded in another container
_MAX_CACHED = 10_000  # chats: a long-lived container seeing many strangers' groups
# Supergroup ids are -100 followed by the chat's number (-100xxxxxxxxxx); a basic group's are
# small negative numbers and never gain a supergroup's id without a move.
_SUPERGROUP_IDS_BELOW = -1_000_000_000_000


class MovedChats:
    """The supergroups that were groups, in ``table``; ``clock`` (seconds) times the cache."""

    def __init__(self, table: DynamoTable, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._table = table
        self._clock = clock
        self._cache: dict[tuple[str, int], tuple[float, int | None]] = {}

    def record(self, tenant: str, chat_id: int, moved_from: int) -> None:
        """Remember that supergroup ``chat_id`` was group ``moved_from`` (one UpdateItem, the
        verb the producer's role has; kept: no expiry, as the allow-list it serves has none)."""
        self._table.update(
            "record_chat_move",
            _pk(tenant, chat_id),
            _SK,
            UpdateExpression="SET moved_from = :from, recorded_at = :now",
            ExpressionAttributeValues={
                ":from": number(moved_from),
                ":now": number(int(self._table.clock())),
            },
        )
        self._cache[(tenant, chat_id)] = (self._clock(), moved_from)

    def allowed_as_moved(self, tenant: str, chat_id: int, allowed_chat_ids: frozenset[int]) -> bool:
        """Whether ``chat_id``, not on ``allowed_chat_ids`` itself, is a supergroup that was a
        group on it. StorageError when the table cannot be read."""
        if chat_id > _SUPERGROUP_IDS_BELOW:
            return False
        moved_from = self._moved_from(tenant, chat_id)
        return moved_from is not None and moved_from in allowed_chat_ids

    def _moved_from(self, tenant: str, chat_id: int) -> int | None:
        now = self._clock()
        cached = self._cache.get((tenant, chat_id))
        if cached is not None:
            kept_for = _MOVED_CACHE_S if cached[1] is not None else _NOT_MOVED_CACHE_S
            if now - cached[0] < kept_for:
                return cached[1]
        item = self._table.get("chat_moved_from", _pk(tenant, chat_id), _SK)
        moved_from = None if item is None else item_int(item, "moved_from")
        if len(self._cache) > _MAX_CACHED:
            self._cache.clear()
        self._cache[(tenant, chat_id)] = (now, moved_from)
        return moved_from


def _pk(tenant: str, chat_id: int) -> str:
    return f"chat|{tenant}|{chat_id}"
