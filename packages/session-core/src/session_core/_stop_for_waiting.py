"""A /stop that finds no turn running, kept for the chat's message still waiting for its turn
(queued, or taken by a consumer still starting): the producer's LiveTurns.

What says a message waits is the chat's backlog count (``ChatBacklog``), which the producer
and the consumer keep anyway for CHAT_QUEUE_LIMIT, so no message costs a request more. The
stop is kept in one TransactWriteItems: a ConditionCheck on the count, and the live item's
update while no turn is live. Apart from ``_live_turns.py`` because only the producer makes
that transaction, so only its role may check items (``dynamodb:ConditionCheckItem``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from ._aws_errors import aws_error_code
from ._backlog import ChatBacklog
from ._dynamo_table import item_key, number
from ._keys import SessionKey
from ._live_turns import LIVE_SK, LiveTurns, StopOutcome
from ._registry_keys import session_item_pk
from ._settings import DEFAULT_RETENTION_DAYS

# A transaction that met a concurrent write of the chat's backlog count (a message admitted or
# released at that moment) is tried again.
_CONFLICT_ATTEMPTS = 3
_KeptStop = Literal["kept", "nothing_waits", "turn_began"]


class LiveTurnsWithBacklog(LiveTurns):
    """LiveTurns whose ``request_stop`` also keeps a stop for a waiting message; ``backlog``
    is the chat's count (None, or CHAT_QUEUE_LIMIT=0: nothing is kept, as in LiveTurns)."""

    def __init__(
        self,
        *,
        dynamodb: Any,
        table: str,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        clock: Callable[[], float] = time.time,
        backlog: ChatBacklog | None = None,
    ) -> None:
        super().__init__(dynamodb=dynamodb, table=table, retention_days=retention_days, clock=clock)
        self._backlog = backlog

    def request_stop(
        self, key: SessionKey, *, turn_id: int | None = None, update_id: int | None = None
    ) -> StopOutcome:
        """Ask the session's running turn (only if it is ``turn_id``, when given) to stop. A stop
        naming no turn, sent as update ``update_id``, that finds no turn running while the
        chat's backlog count says a message waits is kept for the turn that starts next, which
        takes it only if its message was sent before the stop. "nothing_running" when no turn
        runs or waits.

        One UpdateItem when a turn runs; when none does, one TransactWriteItems more. The count
        may be off: stale (a crashed consumer; it heals, see ChatBacklog), or still holding a
        message whose turn has just ended while its answer is sent. At worst such a stop
        answers "Stopping…" for nothing: it only ever stops a turn of a message sent before it."""
        if self._stop_running(key, turn_id):
            return "stopping"
        if turn_id is not None or update_id is None or self._backlog is None:
            return "nothing_running"
        waiting = self._backlog.waiting_check(key.canonical, now=self._table.clock())
        if waiting is None:
            return "nothing_running"
        kept = self._keep_stop(key, update_id, waiting)
        # A turn that began since the first write is the one the stop was for.
        if kept == "kept" or (kept == "turn_began" and self._stop_running(key, None)):
            return "stopping"
        return "nothing_running"

    def _keep_stop(self, key: SessionKey, update_id: int, waiting: dict[str, Any]) -> _KeptStop:
        """Keep a stop (sent as ``update_id``) for the next turn to start, in one transaction
        with ``waiting`` (the backlog's check that a message waits) and only while no turn is
        live: "turn_began" when one is (it started since the stop looked)."""
        now = self._table.clock()
        keep = {
            "Update": {
                "TableName": self._table.name,
                "Key": item_key(session_item_pk(key), LIVE_SK),
                "UpdateExpression": "SET stop_before = :s, stop_before_at = :now, expires_at = :ttl",
                "ConditionExpression": "attribute_not_exists(turn_id) OR attribute_exists(ended_at)",
                "ExpressionAttributeValues": {
                    ":s": number(update_id),
                    ":now": number(now),
                    ":ttl": number(self._table.expires_at(now)),
                },
            }
        }
        for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
            try:
                self._table.dynamodb.transact_write_items(TransactItems=[waiting, keep])
                return "kept"
            except ClientError as exc:
                if aws_error_code(exc) != "TransactionCanceledException":
                    raise self._table.storage_error("request_stop", "TransactWriteItems", exc) from exc
                codes = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
                if codes[1:2] == ["ConditionalCheckFailed"]:
                    return "turn_began"
                if codes[:1] == ["ConditionalCheckFailed"]:
                    return "nothing_waits"
                if attempt == _CONFLICT_ATTEMPTS:  # TransactionConflict each time
                    raise self._table.storage_error("request_stop", "TransactWriteItems", exc) from exc
            except BotoCoreError as exc:
                raise self._table.storage_error("request_stop", "TransactWriteItems", exc) from exc
        raise AssertionError("unreachable")
