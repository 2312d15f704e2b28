"""The producer's durable dedup of Telegram updates (Telegram redelivers for 24 h, SQS dedup
lasts 5 minutes): ``update|<tenant>|<update_id>`` / ``seen`` in the registry's table; and
which group messages were queued (``message|<tenant>|<chat>|<thread>|<message_id>`` /
``queued``), so an edit that adds the bot's mention is answered only when the message was not."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from msgspec import Struct
from session_core import (
    ConditionFailed,
    DynamoTable,
    check_update_id,
    item_key,
    number,
    validate_tenant,
)

_SEEN = "seen"
_ACTED = "acted"
_QUEUED = "queued"
_MARK = "SET first_seen_at = if_not_exists(first_seen_at, :now), expires_at = :ttl"


class GroupMessage(Struct, frozen=True, kw_only=True):
    """A message of a group (or forum topic), as its edits name it."""

    chat_id: int
    thread_id: int
    message_id: int


class UpdateDedup:
    """Which updates of a tenant were already accepted."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def update_seen(self, tenant: str, update_id: int) -> bool:
        """True if ``update_id`` of ``tenant`` was already accepted (Telegram redelivers for 24 h)."""
        return self._table.get("update_seen", _update_pk(tenant, update_id), _SEEN) is not None

    def mark_update_seen(self, tenant: str, update_id: int, *, queued: GroupMessage | None = None) -> None:
        """Record that ``update_id`` was accepted (after it is safely queued); repeating is fine.
        ``queued``: the group message it queued, recorded in the same request (one transaction,
        still one round trip) with the same expiry, for ``claim_edited_message``."""
        now = self._table.clock()
        values = {":now": number(now), ":ttl": number(self._table.expires_at(now))}
        if queued is None:
            self._table.update(
                "mark_update_seen",
                _update_pk(tenant, update_id),
                _SEEN,
                UpdateExpression=_MARK,
                ExpressionAttributeValues=values,
            )
            return
        marks = [
            (_update_pk(tenant, update_id), _SEEN, {}),
            (_message_pk(tenant, queued), _QUEUED, {":update": number(update_id)}),
        ]
        items = [
            {
                "Update": {
                    "TableName": self._table.name,
                    "Key": item_key(pk, sk),
                    "UpdateExpression": _MARK + (", update_id = :update" if extra else ""),
                    "ExpressionAttributeValues": {**values, **extra},
                }
            }
            for pk, sk, extra in marks
        ]
        self._transact("mark_update_seen", items)

    def claim_edited_message(self, tenant: str, message: GroupMessage, update_id: int) -> bool:
        """Record that the edit ``update_id`` is about to queue ``message``; False when the
        message was queued already (as sent, or by another edit). The same update claiming it
        again (Telegram sends it again when queueing failed) is True."""
        now = self._table.clock()
        try:
            self._table.update(
                "claim_edited_message",
                _message_pk(tenant, message),
                _QUEUED,
                UpdateExpression=_MARK + ", update_id = :update",
                ConditionExpression="attribute_not_exists(pk) OR update_id = :update",
                ExpressionAttributeValues={
                    ":now": number(now),
                    ":ttl": number(self._table.expires_at(now)),
                    ":update": number(check_update_id(update_id)),
                },
            )
        except ConditionFailed:
            return False
        return True

    def _transact(self, operation: str, items: list[dict[str, Any]]) -> None:
        try:
            self._table.dynamodb.transact_write_items(TransactItems=items)
        except (ClientError, BotoCoreError) as exc:
            raise self._table.storage_error(operation, "TransactWriteItems", exc) from exc

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


def _message_pk(tenant: str, message: GroupMessage) -> str:
    return f"message|{validate_tenant(tenant)}|{message.chat_id}|{message.thread_id}|{message.message_id}"


def _update_pk(tenant: str, update_id: int) -> str:
    return f"update|{validate_tenant(tenant)}|{check_update_id(update_id)}"
