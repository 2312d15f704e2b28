"""A /stop that finds no turn running, kept for the chat's turn still waiting to start
(queued, or taken by a consumer still starting): the producer's LiveTurns.

Two things say a turn waits, and neither costs a message a request more:
- a tool call the user allowed whose turn has not started (the session's approval is
  ``decided``): the stop also declines that call (``answered_by`` "stop"), else the next
  message would run it;
- the chat's backlog count (``ChatBacklog``), which the producer and the consumer keep anyway
  for CHAT_QUEUE_LIMIT.
The stop is kept in one TransactWriteItems: that condition, and the live item's update while no
turn is live. Apart from ``_live_turns.py`` because only the producer makes that transaction,
so only its role may check items (``dynamodb:ConditionCheckItem``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from ._approvals import Approval, Approvals
from ._aws_errors import aws_error_code, retry_transaction_conflicts
from ._backlog import ChatBacklog
from ._dynamo_table import item_key, number
from ._keys import SessionKey
from ._live_turns import (
    LIVE_SK,
    MAX_KEPT_STOPS,
    LiveTurns,
    StopOutcome,
    Stopper,
    kept_stop_value,
    kept_stops_listed,
    stopper_value,
)
from ._registry_keys import session_item_pk

_KeptStop = Literal["kept", "nothing_waits", "turn_began"]


class LiveTurnsWithBacklog(LiveTurns):
    """LiveTurns whose ``request_stop`` also keeps a stop for a turn waiting to start:
    ``approvals`` says whether an allowed call waits for its turn, ``backlog`` whether a
    message does (None, or CHAT_QUEUE_LIMIT=0: only the first is looked at)."""

    def __init__(
        self, *, backlog: ChatBacklog | None = None, approvals: Approvals | None = None, **table: Any
    ) -> None:
        super().__init__(**table)  # the table's settings, as every TableStore's
        self._backlog = backlog
        self._approvals = approvals

    def request_stop(
        self,
        key: SessionKey,
        *,
        turn_id: int | None = None,
        update_id: int | None = None,
        by: Stopper | None = None,
    ) -> StopOutcome:
        """Ask the session's running turn (only if it is ``turn_id``, when given) to stop. A stop
        naming no turn, sent as update ``update_id``, that finds no turn running while a turn
        waits to start (see the module) is kept for the turn that starts next, which takes it
        only if its message (or button press) was sent before the stop (and ``by``, who sent
        it, with it). "nothing_running" when no turn runs or waits.

        One UpdateItem when a turn runs; when none does, a GetItem of the approval (which also
        says whether a call waits for an answer: "call_waiting") and one TransactWriteItems
        more when a turn waits. The count may be off: stale (a crashed consumer; it heals, see
        ChatBacklog), or still holding a message whose turn has just ended while its answer is
        sent. At worst such a stop answers "Stopping…" for nothing: it only ever stops a turn
        of a message sent before it."""
        stopped, live = self._stop_running(key, turn_id, by)
        if stopped:
            return "stopping"
        approval = None if self._approvals is None else self._approvals.current(key)
        if turn_id is None and update_id is not None:  # a button's or a draft's turn has ended
            listed = kept_stops_listed(live) < MAX_KEPT_STOPS
            kept = self._keep_for_waiting_turn(key, update_id, approval, by, listed=listed)
            if kept is not None:
                return kept
        return "call_waiting" if approval is not None and approval.state == "pending" else "nothing_running"

    def _keep_for_waiting_turn(
        self, key: SessionKey, update_id: int, approval: Approval | None, by: Stopper | None, *, listed: bool
    ) -> StopOutcome | None:
        """Keep the stop for the chat's turn waiting to start (``listed``: among the kept stops
        too): "stopping" when kept, or when that turn began meanwhile and is stopped now; None
        when no turn waits."""
        for waiting in self._waiting_turn_conditions(key, approval):
            kept = self._keep_stop(key, update_id, waiting, by, listed=listed)
            if kept == "kept":
                return "stopping"
            if kept == "turn_began":  # it started since the first write: the stop is for it
                stopped, _ = self._stop_running(key, None, by)
                return "stopping" if stopped else "nothing_running"
        return None

    def _waiting_turn_conditions(
        self, key: SessionKey, approval: Approval | None
    ) -> Iterator[dict[str, Any]]:
        """Each transaction item that holds while a turn of the chat waits to start: first that
        of the call the user allowed (or denied) whose turn has not begun, which the stop
        declines; then the backlog's."""
        if (
            self._approvals is not None
            and approval is not None
            and approval.state == "decided"
            and approval.answered_by != "stop"
        ):
            yield self._approvals.stop_update(key, approval.approval_id)
        if self._backlog is not None:
            waiting = self._backlog.waiting_check(key.canonical, now=self._table.clock())
            if waiting is not None:
                yield waiting

    def _keep_stop(
        self, key: SessionKey, update_id: int, waiting: dict[str, Any], by: Stopper | None, *, listed: bool
    ) -> _KeptStop:
        """Keep a stop (sent as ``update_id``, ``by`` whom; ``listed``: added to the kept stops)
        for the next turn to start, in one transaction with ``waiting`` (a condition that a turn
        waits) and only while no turn is live: "turn_began" when one is (it started since the
        stop looked)."""
        now = self._table.clock()
        # The latest stop is the one kept; each is listed, to name the first (see LiveTurns).
        update = "SET stop_before = :s, stop_before_at = :now, expires_at = :ttl"
        values: dict[str, Any] = {
            ":s": number(update_id),
            ":now": number(now),
            ":ttl": number(self._table.expires_at(now)),
        }
        if listed:
            update += ", stop_before_kept = list_append(if_not_exists(stop_before_kept, :none), :this)"
            values[":none"] = {"L": []}
            values[":this"] = {"L": [kept_stop_value(update_id, now, by)]}
        if by is None:  # nobody to name: not whoever sent a stop kept before
            update += " REMOVE stop_before_by"
        else:
            update += ", stop_before_by = :by"
            values[":by"] = stopper_value(by)
        keep = {
            "Update": {
                "TableName": self._table.name,
                "Key": item_key(session_item_pk(key), LIVE_SK),
                "UpdateExpression": update,
                "ConditionExpression": "attribute_not_exists(turn_id) OR attribute_exists(ended_at)",
                "ExpressionAttributeValues": values,
            }
        }
        try:
            # A message admitted or released at that moment holds the count for a moment.
            retry_transaction_conflicts(
                lambda: self._table.dynamodb.transact_write_items(TransactItems=[waiting, keep])
            )
            return "kept"
        except ClientError as exc:
            if aws_error_code(exc) != "TransactionCanceledException":
                raise self._table.storage_error("request_stop", "TransactWriteItems", exc) from exc
            codes = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
            if codes[1:2] == ["ConditionalCheckFailed"]:
                return "turn_began"
            if codes[:1] == ["ConditionalCheckFailed"]:
                return "nothing_waits"
            raise self._table.storage_error("request_stop", "TransactWriteItems", exc) from exc  # conflicts
        except BotoCoreError as exc:
            raise self._table.storage_error("request_stop", "TransactWriteItems", exc) from exc
