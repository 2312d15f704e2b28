"""The producer's durable dedup of Telegram updates (Telegram redelivers for 24 h, SQS dedup
lasts 5 minutes): ``update|<tenant>|<update_id>`` / ``seen`` in the registry's table; and
which group messages were queued (``message|<tenant>|<chat>|<thread>|<message_id>`` /
``queued``), so an edit that adds the bot's mention is answered only when the message was not.
Messages queued before the producer recorded them have no such record: the first edit the
producer sees writes when the tracking began (``edits|<tenant>|v<n>`` / ``tracked_since``, kept for
good), and an edit of a message sent earlier is never answered."""

from __future__ import annotations

from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from msgspec import Struct
from session_core import (
    ConditionFailed,
    DynamoTable,
    check_update_id,
    item_int,
    item_key,
    number,
    retry_transaction_conflicts,
    validate_tenant,
)

_SEEN = "seen"
_ACTED = "acted"
_QUEUED = "queued"
_TRACKED_SINCE = "tracked_since"
_MARK = "SET first_seen_at = if_not_exists(first_seen_at, :now), expires_at = :ttl"

# The mark is set this far past the first edit: a producer of the version before (still
# finishing during a deploy) may queue a message without a record, and Telegram's clock dates
# messages while ours dates the mark. Edits of messages in this margin are merely not answered.
TRACKING_MARGIN_S = 300

EditClaim = Literal["claimed", "already queued", "already a stop", "sent before edits were tracked"]


class GroupMessage(Struct, frozen=True, kw_only=True):
    """A message of a group (or forum topic), as its edits name it; a private chat's /stop too."""

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

    def mark_update_seen(
        self, tenant: str, update_id: int, *, answered: GroupMessage | None = None, as_stop: bool = False
    ) -> None:
        """Record that ``update_id`` was accepted (after it is safely queued); repeating is fine.
        ``answered``: the message it answered without queueing it (a paste's part, a /stop),
        recorded as a queued message is (``record_queued``) in the same request (one
        transaction, still one round trip) with the same expiry, for ``claim_edited_message``;
        with ``as_stop`` it was a /stop, answered so (for ``claim_stop_edit``)."""
        now = self._table.clock()
        values = {":now": number(now), ":ttl": number(self._table.expires_at(now))}
        if answered is None:
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
            (_message_pk(tenant, answered), _QUEUED, {":update": number(update_id)}),
        ]
        recorded = ", update_id = :update" + (", stop_update_id = :update" if as_stop else "")
        items = [
            {
                "Update": {
                    "TableName": self._table.name,
                    "Key": item_key(pk, sk),
                    "UpdateExpression": _MARK + (recorded if extra else ""),
                    "ExpressionAttributeValues": {**values, **extra},
                }
            }
            for pk, sk, extra in marks
        ]
        self._transact("mark_update_seen", items)

    def record_queued(self, tenant: str, message: GroupMessage, update_id: int) -> bool:
        """Record that update ``update_id`` is about to queue ``message`` (before it is queued:
        a record that cannot be written keeps it from the queue, so an edit of a queued
        message always finds it). Should queueing fail, Telegram sends the update again and it
        is queued then, so the record needs no undoing. False when an edit of ``message``
        claimed it first (the copy Telegram sent again after a failed record): it is answered.
        An edit into a /stop that claimed it before anything was queued for it answered only
        the stop: the message is recorded and queued, and its turn is stopped before it begins
        (its sender is told, as in a private chat, where nothing is recorded)."""
        now = self._table.clock()
        try:
            self._table.update(
                "record_queued",
                _message_pk(tenant, message),
                _QUEUED,
                UpdateExpression=_MARK + ", update_id = :update",
                # Only an edit's claim is refused: that edit answered the message. A /stop
                # edit's claim alone (update_id is its own: nothing was queued before) did not.
                ConditionExpression=(
                    "attribute_not_exists(edit_update_id) OR update_id = :update"
                    " OR update_id = stop_update_id"
                ),
                ExpressionAttributeValues={
                    ":now": number(now),
                    ":ttl": number(self._table.expires_at(now)),
                    ":update": number(check_update_id(update_id)),
                },
            )
        except ConditionFailed:
            return False
        return True

    def claim_edited_message(
        self, tenant: str, message: GroupMessage, update_id: int, *, sent_at: int
    ) -> EditClaim:
        """Record that the edit ``update_id`` is about to queue ``message`` (sent at ``sent_at``,
        epoch seconds): "claimed", or "already queued" (as sent, or by another edit), or "sent
        before edits were tracked" (it may have been queued without a record). The same update
        claiming it again (Telegram sends it again when queueing failed) is "claimed"."""
        return self._claim(
            "claim_edited_message",
            tenant,
            message,
            update_id,
            sent_at=sent_at,
            update=", update_id = :update, edit_update_id = :update",
            condition="attribute_not_exists(pk) OR update_id = :update",
            refused="already queued",
        )

    def claim_stop_edit(
        self, tenant: str, message: GroupMessage, update_id: int, *, sent_at: int
    ) -> EditClaim:
        """Record that the edit ``update_id`` turned ``message`` into a /stop about to be
        written: "claimed", or "already a stop" (sent as one, or edited into one before), or
        "sent before edits were tracked". A message queued as a question may still become a
        stop (to stop its own turn); once claimed, no edit of it queues a turn."""
        return self._claim(
            "claim_stop_edit",
            tenant,
            message,
            update_id,
            sent_at=sent_at,
            update=(
                ", update_id = if_not_exists(update_id, :update), stop_update_id = :update,"
                " edit_update_id = :update"
            ),
            condition="attribute_not_exists(stop_update_id) OR stop_update_id = :update",
            refused="already a stop",
        )

    def _claim(
        self,
        operation: str,
        tenant: str,
        message: GroupMessage,
        update_id: int,
        *,
        sent_at: int,
        update: str,
        condition: str,
        refused: EditClaim,
    ) -> EditClaim:
        since = self._edits_tracked_since(tenant)
        if since is None or sent_at < since:
            return "sent before edits were tracked"
        now = self._table.clock()
        try:
            self._table.update(
                operation,
                _message_pk(tenant, message),
                _QUEUED,
                UpdateExpression=_MARK + update,
                ConditionExpression=condition,
                ExpressionAttributeValues={
                    ":now": number(now),
                    ":ttl": number(self._table.expires_at(now)),
                    ":update": number(check_update_id(update_id)),
                },
            )
        except ConditionFailed:
            return refused
        return "claimed"

    def release_edit_claim(self, tenant: str, message: GroupMessage) -> None:
        """The edit that claimed ``message`` was not queued after all (a limit dropped it): a
        later edit of it may claim it. Only that edit can hold the claim, so no condition."""
        self._table.delete("release_edit_claim", _message_pk(tenant, message), _QUEUED)

    def _edits_tracked_since(self, tenant: str) -> int | None:
        """Since when every queued group message of ``tenant`` is recorded; None the first time
        asked, which starts the count now. Read on the edit path only (edits are rare); the
        mark never moves back, so a message sent before it can never pass."""
        pk = _edits_pk(tenant)
        item = self._table.get("claim_edited_message", pk, _TRACKED_SINCE)
        if item is not None:
            return item_int(item, "since")
        # No expires_at: the mark is kept for good (written again, it could only move forward).
        self._table.update(
            "claim_edited_message",
            pk,
            _TRACKED_SINCE,
            UpdateExpression="SET since = if_not_exists(since, :since)",
            ExpressionAttributeValues={":since": number(int(self._table.clock()) + TRACKING_MARGIN_S)},
        )
        return None

    def _transact(self, operation: str, items: list[dict[str, Any]]) -> None:
        write = self._table.dynamodb.transact_write_items
        try:  # an edit's claim of the same message may hold it for a moment
            retry_transaction_conflicts(lambda: write(TransactItems=items))
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
            UpdateExpression=_MARK,
            ExpressionAttributeValues={":now": number(now), ":ttl": number(self._table.expires_at(now))},
        )


def _message_pk(tenant: str, message: GroupMessage) -> str:
    return f"message|{validate_tenant(tenant)}|{message.chat_id}|{message.thread_id}|{message.message_id}"


# Which messages the producer records as answered (groups' queued messages, the parts of a
# paste answered with it, /stop; private chats' /stop from v3): raise it when another kind
# starts being recorded, so the mark of a producer that did not record that kind is not
# trusted and tracking starts anew.
RECORDING_VERSION = 3


def _edits_pk(tenant: str) -> str:
    return f"edits|{validate_tenant(tenant)}|v{RECORDING_VERSION}"


def _update_pk(tenant: str, update_id: int) -> str:
    return f"update|{validate_tenant(tenant)}|{check_update_id(update_id)}"
