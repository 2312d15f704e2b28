"""How many of a chat's messages wait in the queue: the producer admits, the consumer releases.

A chat (one session key) may have at most ``limit`` messages queued and not yet answered; a
burst beyond gets one notice instead of a turn per message. One item per session key (``pk``
``backlog|<session key>``, ``sk`` ``queued``) holds

- ``queued``: messages admitted and not yet released;
- ``touched_ms``: when the producer or the consumer last changed it;
- ``noticed``: present once the notice of this burst was sent.

Self-healing: a count that nobody touched for ``stale_after_s`` is treated as 0 (a consumer
that crashed, a record dead-lettered by the queue's redrive, a producer that admitted a
message and then failed to enqueue it would otherwise leave the chat blocked); a draining
consumer takes the count to 0 and clears ``noticed``; the item expires by TTL. While the
consumer works through a backlog it touches the item after every message, so a live backlog
never looks stale. Errors err towards letting messages through: the rule protects cost, not
correctness.

The count also tells a /stop that finds no turn running whether a message of the chat waits
for its turn (``waiting_check``, used by ``LiveTurnsWithBacklog.request_stop``), so nothing else has to be
written per message for that.
"""

from __future__ import annotations

from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from ._aws_errors import aws_error_code, retry_transaction_conflicts
from ._logging import get_logger

log = get_logger(__name__)

BacklogVerdict = Literal["queued", "notify", "drop"]
# Longer than a turn may run (Lambda's 15 min) plus its delivery: a live backlog is touched
# at least this often, a leaked count is forgotten after it.
DEFAULT_STALE_AFTER_S = 1_800
_CONDITION_FAILED = "ConditionalCheckFailedException"


class ChatBacklog:
    """Counts queued messages per session key in ``table`` (boto3 DynamoDB client);
    ``limit`` 0 turns the rule off (nothing is counted)."""

    def __init__(
        self, *, dynamodb: Any, table: str, limit: int, stale_after_s: float = DEFAULT_STALE_AFTER_S
    ) -> None:
        self._db = dynamodb
        self._table = table
        self.limit = limit
        self._stale_after_ms = int(stale_after_s * 1000)

    def admit(self, session_key: str, *, now: float) -> BacklogVerdict:
        """Count one more queued message ("queued"), or refuse it: "notify" for the first
        message over the limit in a burst, "drop" for the rest. One UpdateItem when admitted
        (two when the count it found was stale)."""
        if not self.limit:
            return "queued"
        now_ms = round(now * 1000)
        stale_before = now_ms - self._stale_after_ms
        try:
            written, old = self._update(
                session_key,
                "ADD queued :one SET touched_ms = :now, expires_at = :ttl",
                "attribute_not_exists(queued) OR queued < :limit",
                {":one": 1, ":now": now_ms, ":ttl": self._ttl(now_ms), ":limit": self.limit},
            )
            if _number(old, "queued") > 0 and _number(old, "touched_ms") < stale_before:
                # Left over from a crash: this message starts the count again.
                log.warning("backlog.stale_count_reset", queued=_number(old, "queued"))
                # Unless another message touched it in between (then that one counts on).
                touched = now_ms if written else _number(old, "touched_ms")
                self._update(
                    session_key,
                    "SET queued = :one, touched_ms = :now, expires_at = :ttl REMOVE noticed",
                    "touched_ms = :touched",
                    {":one": 1, ":now": now_ms, ":ttl": self._ttl(now_ms), ":touched": touched},
                )
                return "queued"
            if written:
                return "queued"
            if "noticed" in old:
                return "drop"
            noticed, _ = self._update(
                session_key, "SET noticed = :now", "attribute_not_exists(noticed)", {":now": now_ms}
            )
            return "notify" if noticed else "drop"
        except (ClientError, BotoCoreError) as exc:
            log.warning("backlog.unavailable", error=type(exc).__name__)
            return "queued"

    def release(self, session_key: str, *, now: float) -> None:
        """One admitted message left the queue (answered, refused or dead-lettered). When the
        chat's backlog is empty again, the next burst gets its own notice."""
        if not self.limit:
            return
        now_ms = round(now * 1000)
        try:
            item = self._decrement(session_key, now_ms)
            if _number(item, "queued") <= 0 and "noticed" in item:
                self._update(session_key, "REMOVE noticed", "queued <= :zero", {":zero": 0})
        except ClientError as exc:
            if aws_error_code(exc) != _CONDITION_FAILED:  # already 0 (reset, or released twice)
                log.warning("backlog.release_failed", error=aws_error_code(exc))
        except BotoCoreError as exc:
            log.warning("backlog.release_failed", error=type(exc).__name__)

    def _decrement(self, session_key: str, now_ms: int) -> dict[str, Any]:
        # A /stop's transaction checking the count holds the item for a moment (see
        # waiting_check): a release refused then would stay counted.
        out = retry_transaction_conflicts(
            lambda: self._db.update_item(
                TableName=self._table,
                Key=self._key(session_key),
                UpdateExpression="ADD queued :minus SET touched_ms = :now",
                ConditionExpression="queued > :zero",
                ExpressionAttributeValues={
                    ":minus": {"N": "-1"},
                    ":now": {"N": str(now_ms)},
                    ":zero": {"N": "0"},
                },
                ReturnValues="ALL_NEW",
            )
        )
        return dict(out.get("Attributes", {}))

    def waiting_check(self, session_key: str, *, now: float) -> dict[str, Any] | None:
        """A ``ConditionCheck`` for TransactWriteItems that holds while a message of the chat
        is counted as waiting (admitted, not yet released, the count not stale), so a write can
        depend on it in the same request; None when the rule is off (nothing is counted)."""
        if not self.limit:
            return None
        fresh_since_ms = round(now * 1000) - self._stale_after_ms
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": self._key(session_key),
                "ConditionExpression": "queued > :zero AND touched_ms >= :fresh",
                "ExpressionAttributeValues": {":zero": {"N": "0"}, ":fresh": {"N": str(fresh_since_ms)}},
            }
        }

    def _update(
        self, session_key: str, update: str, condition: str, values: dict[str, int]
    ) -> tuple[bool, dict[str, Any]]:
        """A conditional UpdateItem: whether it was written, and the item as it stood before."""
        try:
            out = self._db.update_item(
                TableName=self._table,
                Key=self._key(session_key),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues={name: {"N": str(value)} for name, value in values.items()},
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws_error_code(exc) != _CONDITION_FAILED:
                raise
            return False, dict(exc.response.get("Item") or {})
        return True, dict(out.get("Attributes") or {})

    def _key(self, session_key: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"backlog|{session_key}"}, "sk": {"S": "queued"}}

    def _ttl(self, now_ms: int) -> int:
        return (now_ms + 2 * self._stale_after_ms) // 1000


def _number(item: dict[str, Any], name: str) -> int:
    return int(item.get(name, {}).get("N", "0"))
