"""The producer's durable dedup of Telegram updates (Telegram redelivers for 24 h, SQS dedup
lasts 5 minutes): ``update|<tenant>|<update_id>`` / ``seen`` in the registry's table."""

from __future__ import annotations

from session_core import DynamoTable, check_update_id, number, validate_tenant

_SEEN = "seen"
_ACTED = "acted"


class UpdateDedup:
    """Which updates of a tenant were already accepted."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def update_seen(self, tenant: str, update_id: int) -> bool:
        """True if ``update_id`` of ``tenant`` was already accepted (Telegram redelivers for 24 h)."""
        return self._table.get("update_seen", _update_pk(tenant, update_id), _SEEN) is not None

    def mark_update_seen(self, tenant: str, update_id: int) -> None:
        """Record that ``update_id`` was accepted (after it is safely queued); repeating is fine."""
        now = self._table.clock()
        self._table.update(
            "mark_update_seen",
            _update_pk(tenant, update_id),
            _SEEN,
            UpdateExpression="SET first_seen_at = if_not_exists(first_seen_at, :now), expires_at = :ttl",
            ExpressionAttributeValues={":now": number(now), ":ttl": number(self._table.expires_at(now))},
        )

    def update_acted(self, tenant: str, update_id: int) -> bool:
        """True if ``update_id`` already changed something before it was queued (see
        ``mark_update_acted``): a copy Telegram sends again finishes that update's work."""
        return self._table.get("update_acted", _update_pk(tenant, update_id), _ACTED) is not None

    def mark_update_acted(self, tenant: str, update_id: int) -> None:
        """Record that ``update_id`` is about to change state the producer cannot take back
        (an approval press decides before its resume is queued): if queueing fails, the copy
        Telegram sends again is known as this update's, not as a second press."""
        now = self._table.clock()
        self._table.update(
            "mark_update_acted",
            _update_pk(tenant, update_id),
            _ACTED,
            UpdateExpression="SET first_seen_at = if_not_exists(first_seen_at, :now), expires_at = :ttl",
            ExpressionAttributeValues={":now": number(now), ":ttl": number(self._table.expires_at(now))},
        )


def _update_pk(tenant: str, update_id: int) -> str:
    return f"update|{validate_tenant(tenant)}|{check_update_id(update_id)}"
