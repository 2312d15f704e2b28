"""The session registry in DynamoDB: which SDK session a chat continues, who may write it now,
and what each Telegram update already produced (so a redelivery never runs the model twice).

Items (one table, ``pk``/``sk`` strings, every item carries the TTL attribute ``expires_at``):

==============================  ==================  =========================================
pk                              sk                  holds
==============================  ==================  =========================================
``session|<canonical key>``     ``meta``            sdk_session_id, head_version, turns, cost_usd
                                                    (the chat's total), conversation_turns/_cost_usd
                                                    (since /new), sdk_session_cost_usd (the SDK's
                                                    running total), previous_session_ids, lease_*
``session|<canonical key>``     ``turn|<update>``   the recorded TurnResult of that update
``session|<canonical key>``     ``delivery|<upd>``  ``chunk_<i>`` → message_id, ``notice_<kind>``
``update|<tenant>|<update_id>`` ``seen``            durable dedup mark of the producer
==============================  ==================  =========================================
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from ._aws_errors import aws_error_code, storage_error
from ._errors import LeaseHeldError, LeaseLostError, StaleHeadError, StorageError
from ._keys import SessionKey, validate_tenant
from ._logging import get_logger
from ._models import TurnResult, decode_turn_result, encode

_log = get_logger(__name__)
_DAY_S = 86_400
_META = "meta"
_CONDITION_FAILED = "ConditionalCheckFailedException"
_NOTICE_KIND_RE = re.compile(r"[a-z0-9_]{1,64}")


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the registry knows about one session (chat or forum topic)."""

    session_key: SessionKey
    sdk_session_id: str | None
    head_version: int
    turns: int
    cost_usd: float  # the chat's total, across /new
    created_at: float
    updated_at: float
    previous_session_ids: tuple[str, ...] = ()
    conversation_turns: int = 0  # since the last /new
    conversation_cost_usd: float = 0.0
    # The current SDK session's running total as last recorded (prices its next turn).
    sdk_session_cost_usd: float = 0.0


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """The right to run one turn of a session until ``expires_at`` (epoch seconds).

    ``head_version`` is the session's head when the lease was acquired; completing
    the turn advances it by one, and only from that value.
    """

    session_key: SessionKey
    owner: str
    expires_at: float
    head_version: int


class SessionRegistry:
    """Session records, leases, turn results, delivery records and update dedup marks.

    ``dynamodb`` is a boto3 DynamoDB client; ``clock`` returns epoch seconds (tests
    pass a fake one to expire leases without sleeping). Every write refreshes the
    item's ``expires_at`` to now + ``retention_days``.
    """

    def __init__(
        self,
        *,
        dynamodb: Any,
        table: str,
        retention_days: int = 25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if retention_days < 1:
            raise ValueError(f"retention_days must be >= 1, got {retention_days}")
        self._db = dynamodb
        self._table = table
        self._retention_s = retention_days * _DAY_S
        self._clock = clock

    # -- sessions ---------------------------------------------------------------------------

    def get_session(self, key: SessionKey) -> SessionRecord | None:
        """The session's record, or None if it never ran a turn (or expired)."""
        item = self._get("get_session", _session_pk(key), _META)
        return None if item is None else _record(key, item)

    def start_new_session(self, key: SessionKey) -> SessionRecord | None:
        """Forget the current SDK session (for ``/new``); the next turn starts a fresh one.

        The old id moves to ``previous_session_ids``, so its transcript stays retrievable
        until it expires. Returns the updated record, or None if there was no session.
        """
        # An update expression cannot copy one attribute into a list, so read the old id
        # first; the write is conditional on it, so a concurrent switch is not undone.
        record = self.get_session(key)
        if record is None or record.sdk_session_id is None:
            return record
        now = self._clock()
        try:
            out = self._db.update_item(
                TableName=self._table,
                Key=_key(_session_pk(key), _META),
                UpdateExpression=(
                    "SET previous_session_ids = list_append(if_not_exists(previous_session_ids,"
                    " :empty), :old), updated_at = :now, expires_at = :ttl,"
                    " conversation_turns = :zero, conversation_cost_usd = :zero,"
                    " sdk_session_cost_usd = :zero REMOVE sdk_session_id"
                ),
                ConditionExpression="sdk_session_id = :old_id",
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":old": {"L": [{"S": record.sdk_session_id}]},
                    ":old_id": {"S": record.sdk_session_id},
                    ":zero": _num(0),
                    ":now": _num(now),
                    ":ttl": _num(self._ttl(now)),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if aws_error_code(exc) == _CONDITION_FAILED:
                return self.get_session(key)  # someone else switched meanwhile; theirs stands
            raise self._storage_error("start_new_session", "UpdateItem", exc) from exc
        except BotoCoreError as exc:
            raise self._storage_error("start_new_session", "UpdateItem", exc) from exc
        return _record(key, out["Attributes"])

    # -- leases -----------------------------------------------------------------------------

    def acquire_lease(self, key: SessionKey, *, owner: str, duration_s: float) -> Lease:
        """Take the session's lease for ``duration_s`` seconds, creating the session record.

        Succeeds when no lease is held, the held one has expired (a crashed container
        never blocks a chat), or ``owner`` already holds it. Raises LeaseHeldError when
        another owner's lease is still live.
        """
        _check_owner(owner)
        _check_duration(duration_s)
        now = self._clock()
        expires_at = now + duration_s
        try:
            out = self._db.update_item(
                TableName=self._table,
                Key=_key(_session_pk(key), _META),
                UpdateExpression=(
                    "SET lease_owner = :owner, lease_expires_at = :until, expires_at = :ttl,"
                    " session_key = :key, head_version = if_not_exists(head_version, :zero),"
                    " turns = if_not_exists(turns, :zero), cost_usd = if_not_exists(cost_usd, :zero),"
                    " created_at = if_not_exists(created_at, :now),"
                    " updated_at = if_not_exists(updated_at, :now)"
                ),
                ConditionExpression=(
                    "attribute_not_exists(lease_owner) OR lease_expires_at <= :now"
                    " OR lease_owner = :owner"
                ),
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": _num(expires_at),
                    ":ttl": _num(self._ttl(now)),
                    ":key": {"S": key.canonical},
                    ":zero": _num(0),
                    ":now": _num(now),
                },
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws_error_code(exc) != _CONDITION_FAILED:
                raise self._storage_error("acquire_lease", "UpdateItem", exc) from exc
            held = exc.response.get("Item") or self._get("acquire_lease", _session_pk(key), _META)
            holder = _str(held, "lease_owner") if held else "?"
            until = _float(held, "lease_expires_at") if held else 0.0
            raise LeaseHeldError(key.canonical, holder or "?", until) from exc
        except BotoCoreError as exc:
            raise self._storage_error("acquire_lease", "UpdateItem", exc) from exc
        before = out.get("Attributes", {})
        previous_owner = _str(before, "lease_owner")
        if previous_owner not in (None, owner):
            # Its holder crashed or overran; operators want to see that.
            _log.warning(
                "expired_lease_taken_over",
                session_key=key.canonical,
                previous_owner=previous_owner,
                expired_at=_float(before, "lease_expires_at"),
                owner=owner,
            )
        return Lease(
            session_key=key,
            owner=owner,
            expires_at=expires_at,
            head_version=_int(before, "head_version"),  # the update never changes an existing head
        )

    def renew_lease(self, lease: Lease, *, duration_s: float) -> Lease:
        """Extend a lease we hold to now + ``duration_s``; LeaseLostError if it is no longer ours."""
        _check_duration(duration_s)
        now = self._clock()
        expires_at = now + duration_s
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(_session_pk(lease.session_key), _META),
                UpdateExpression="SET lease_expires_at = :until, expires_at = :ttl",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={
                    ":owner": {"S": lease.owner},
                    ":until": _num(expires_at),
                    ":ttl": _num(self._ttl(now)),
                },
            )
        except ClientError as exc:
            if aws_error_code(exc) == _CONDITION_FAILED:
                raise LeaseLostError(lease.session_key.canonical, lease.owner) from exc
            raise self._storage_error("renew_lease", "UpdateItem", exc) from exc
        except BotoCoreError as exc:
            raise self._storage_error("renew_lease", "UpdateItem", exc) from exc
        return msgspec.structs.replace(lease, expires_at=expires_at)

    def release_lease(self, lease: Lease) -> None:
        """Give the lease back so the next turn need not wait; a lease already lost is fine."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(_session_pk(lease.session_key), _META),
                UpdateExpression="REMOVE lease_owner, lease_expires_at",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": lease.owner}},
            )
        except ClientError as exc:
            if aws_error_code(exc) != _CONDITION_FAILED:
                raise self._storage_error("release_lease", "UpdateItem", exc) from exc
        except BotoCoreError as exc:
            raise self._storage_error("release_lease", "UpdateItem", exc) from exc

    # -- turns ------------------------------------------------------------------------------

    def get_turn_result(self, key: SessionKey, update_id: int) -> TurnResult | None:
        """The result recorded for ``update_id`` (marked ``replayed=True``), or None."""
        item = self._get("get_turn_result", _session_pk(key), _turn_sk(update_id))
        if item is None:
            return None
        result = decode_turn_result(item["result"]["B"])
        return msgspec.structs.replace(result, replayed=True)

    def complete_turn(self, lease: Lease, *, result: TurnResult) -> SessionRecord:
        """Record ``result`` as the answer to its update and advance the head by one, atomically.

        One TransactWriteItems: the turn item (only if that update has none yet) and the
        session update (only if the head is still ``lease.head_version`` and the lease is
        still ours). Completing the same update again changes nothing and returns the
        current record. Raises LeaseLostError or StaleHeadError when a condition fails;
        nothing is written then.
        """
        key = lease.session_key
        self._write_turn(lease, result)
        record = self.get_session(key)
        if record is None:  # the transaction just wrote it; only a deleted table gets here
            raise StorageError("complete_turn", f"session {key.canonical} vanished after its write")
        return record

    def record_turn(self, lease: Lease, *, result: TurnResult) -> TurnResult:
        """Like ``complete_turn``, but answer with the result that counts for the update:
        ``result`` when this call recorded it, or the one an earlier run of the same update
        recorded first (``replayed=True``). No read follows a successful write."""
        if self._write_turn(lease, result):
            return result
        recorded = self.get_turn_result(lease.session_key, result.update_id)
        if recorded is None or msgspec.structs.replace(recorded, replayed=False) == result:
            return result  # our own write landed before (a retry after a lost response)
        return recorded

    def _write_turn(self, lease: Lease, result: TurnResult) -> bool:
        """The transaction of ``complete_turn``; False when the update was recorded already."""
        key = lease.session_key
        if result.session_key != key.canonical:
            raise ValueError(
                f"TurnResult.session_key {result.session_key!r} is not the lease's {key.canonical!r}"
            )
        now = self._clock()
        ttl = _num(self._ttl(now))
        set_sdk_id = ", sdk_session_id = :sid" if result.session_id else ""
        values: dict[str, Any] = {
            ":next": _num(lease.head_version + 1),
            ":head": _num(lease.head_version),
            ":owner": {"S": lease.owner},
            ":one": _num(1),
            ":zero": _num(0),
            ":cost": _num(result.cost_usd),
            ":sdk_total": _num(result.session_cost_usd),
            ":now": _num(now),
            ":ttl": ttl,
        }
        if result.session_id:
            values[":sid"] = {"S": result.session_id}
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **_key(_session_pk(key), _turn_sk(result.update_id)),
                                "result": {"B": encode(result)},
                                "recorded_at": _num(now),
                                "expires_at": ttl,
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": _key(_session_pk(key), _META),
                            "UpdateExpression": (
                                "SET head_version = :next, turns = turns + :one,"
                                " cost_usd = cost_usd + :cost, updated_at = :now,"
                                " conversation_turns ="
                                " if_not_exists(conversation_turns, :zero) + :one,"
                                " conversation_cost_usd ="
                                " if_not_exists(conversation_cost_usd, :zero) + :cost,"
                                " sdk_session_cost_usd = :sdk_total,"
                                f" expires_at = :ttl{set_sdk_id}"
                            ),
                            "ConditionExpression": "head_version = :head AND lease_owner = :owner",
                            "ExpressionAttributeValues": values,
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                ]
            )
        except ClientError as exc:
            if aws_error_code(exc) != "TransactionCanceledException":
                raise self._storage_error("complete_turn", "TransactWriteItems", exc) from exc
            reasons = exc.response.get("CancellationReasons") or [{}, {}]
            turn_reason, session_reason = reasons[0], reasons[1]
            already_recorded = turn_reason.get("Code") == "ConditionalCheckFailed"
            if already_recorded and self._get("complete_turn", _session_pk(key), _META) is not None:
                return False  # a retry changes nothing
            if session_reason.get("Code") != "ConditionalCheckFailed":
                raise self._storage_error("complete_turn", "TransactWriteItems", exc) from exc
            current = session_reason.get("Item") or self._get(
                "complete_turn", _session_pk(key), _META
            )
            if not current or _str(current, "lease_owner") != lease.owner:
                raise LeaseLostError(key.canonical, lease.owner) from exc
            raise StaleHeadError(key.canonical, lease.head_version) from exc
        except BotoCoreError as exc:
            raise self._storage_error("complete_turn", "TransactWriteItems", exc) from exc
        return True

    def add_failed_turn_cost(
        self, key: SessionKey, cost_usd: float, *, session_cost_usd: float | None = None
    ) -> None:
        """Add what a run that ended without a recorded answer (an error result) cost to the
        chat's and the conversation's totals; the turn count stays. ``session_cost_usd`` is
        the CLI's running total after that run when it continued the recorded SDK session:
        the CLI keeps counting the run even though the next turn resumes before it."""
        if not cost_usd > 0:
            raise ValueError(f"cost_usd must be > 0, got {cost_usd!r}")
        now = self._clock()
        values = {":cost": _num(cost_usd), ":ttl": _num(self._ttl(now))}
        set_total = ""
        if session_cost_usd is not None:
            values[":total"] = _num(session_cost_usd)
            set_total = ", sdk_session_cost_usd = :total"
        self._update(
            "add_failed_turn_cost",
            _session_pk(key),
            _META,
            UpdateExpression=(
                f"ADD cost_usd :cost, conversation_cost_usd :cost SET expires_at = :ttl{set_total}"
            ),
            ExpressionAttributeValues=values,
        )

    # -- delivery records -------------------------------------------------------------------

    def delivered_chunks(self, key: SessionKey, update_id: int) -> dict[int, int]:
        """Chunks of the answer to ``update_id`` already sent: chunk index → Telegram message_id."""
        item = self._get("delivered_chunks", _session_pk(key), _delivery_sk(update_id)) or {}
        return {
            int(name.removeprefix("chunk_")): int(value["N"])
            for name, value in item.items()
            if name.startswith("chunk_")
        }

    def record_delivered_chunk(
        self, key: SessionKey, update_id: int, index: int, message_id: int
    ) -> None:
        """Remember that chunk ``index`` of the answer went out as ``message_id``."""
        if index < 0:
            raise ValueError(f"chunk index must be >= 0, got {index}")
        now = self._clock()
        self._update(
            "record_delivered_chunk",
            _session_pk(key),
            _delivery_sk(update_id),
            UpdateExpression="SET #chunk = :mid, expires_at = :ttl",
            ExpressionAttributeNames={"#chunk": f"chunk_{index}"},
            ExpressionAttributeValues={":mid": _num(message_id), ":ttl": _num(self._ttl(now))},
        )

    def notice_sent(self, key: SessionKey, update_id: int, kind: str) -> bool:
        """Mark that notice ``kind`` (e.g. "busy") was sent for ``update_id``.

        True the first time only, so a redelivered update tells the user once.
        """
        if not _NOTICE_KIND_RE.fullmatch(kind):
            raise ValueError(f"notice kind must match {_NOTICE_KIND_RE.pattern}, got {kind!r}")
        now = self._clock()
        try:
            self._update(
                "notice_sent",
                _session_pk(key),
                _delivery_sk(update_id),
                UpdateExpression="SET #notice = :now, expires_at = :ttl",
                ConditionExpression="attribute_not_exists(#notice)",
                ExpressionAttributeNames={"#notice": f"notice_{kind}"},
                ExpressionAttributeValues={":now": _num(now), ":ttl": _num(self._ttl(now))},
            )
        except _ConditionFailed:
            return False
        return True

    # -- update dedup (producer) ------------------------------------------------------------

    def update_seen(self, tenant: str, update_id: int) -> bool:
        """True if ``update_id`` of ``tenant`` was already accepted (Telegram redelivers for 24 h)."""
        return self._get("update_seen", _update_pk(tenant, update_id), "seen") is not None

    def mark_update_seen(self, tenant: str, update_id: int) -> None:
        """Record that ``update_id`` was accepted (after it is safely queued); repeating is fine."""
        now = self._clock()
        self._update(
            "mark_update_seen",
            _update_pk(tenant, update_id),
            "seen",
            UpdateExpression="SET first_seen_at = if_not_exists(first_seen_at, :now),"
            " expires_at = :ttl",
            ExpressionAttributeValues={":now": _num(now), ":ttl": _num(self._ttl(now))},
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _ttl(self, now: float) -> int:
        return int(now) + self._retention_s

    def _get(self, operation: str, pk: str, sk: str) -> dict[str, Any] | None:
        try:
            out = self._db.get_item(TableName=self._table, Key=_key(pk, sk), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise self._storage_error(operation, "GetItem", exc) from exc
        item: dict[str, Any] | None = out.get("Item")
        return item

    def _update(self, operation: str, pk: str, sk: str, **kwargs: Any) -> None:
        try:
            self._db.update_item(TableName=self._table, Key=_key(pk, sk), **kwargs)
        except ClientError as exc:
            if aws_error_code(exc) == _CONDITION_FAILED:
                raise _ConditionFailed from exc
            raise self._storage_error(operation, "UpdateItem", exc) from exc
        except BotoCoreError as exc:
            raise self._storage_error(operation, "UpdateItem", exc) from exc

    def _storage_error(
        self, operation: str, request: str, exc: ClientError | BotoCoreError
    ) -> StorageError:
        return storage_error(
            f"registry.{operation}", exc, context=f"DynamoDB {request} on table {self._table!r}"
        )


class _ConditionFailed(Exception):
    """A conditional write found its condition false (internal signal)."""


def _session_pk(key: SessionKey) -> str:
    return f"session|{key.canonical}"


def _update_pk(tenant: str, update_id: int) -> str:
    validate_tenant(tenant)
    return f"update|{tenant}|{_update_id(update_id)}"


def _turn_sk(update_id: int) -> str:
    return f"turn|{_update_id(update_id)}"


def _delivery_sk(update_id: int) -> str:
    return f"delivery|{_update_id(update_id)}"


def _update_id(update_id: int) -> int:
    if isinstance(update_id, bool) or not isinstance(update_id, int) or update_id < 0:
        raise ValueError(f"update_id must be a non-negative integer, got {update_id!r}")
    return update_id


def _check_owner(owner: str) -> None:
    if not owner or len(owner) > 256:
        raise ValueError("lease owner must be a non-empty string of at most 256 characters")


def _check_duration(duration_s: float) -> None:
    if not duration_s > 0:
        raise ValueError(f"lease duration_s must be > 0, got {duration_s!r}")


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _num(value: float) -> dict[str, str]:
    return {"N": str(value)}


def _str(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _int(item: Mapping[str, Any], name: str) -> int:
    return int(item[name]["N"]) if name in item else 0


def _float(item: Mapping[str, Any], name: str) -> float:
    return float(item[name]["N"]) if name in item else 0.0


def _record(key: SessionKey, item: Mapping[str, Any]) -> SessionRecord:
    return SessionRecord(
        session_key=key,
        sdk_session_id=_str(item, "sdk_session_id"),
        head_version=_int(item, "head_version"),
        turns=_int(item, "turns"),
        cost_usd=_float(item, "cost_usd"),
        created_at=_float(item, "created_at"),
        updated_at=_float(item, "updated_at"),
        previous_session_ids=tuple(
            str(v["S"]) for v in item.get("previous_session_ids", {}).get("L", [])
        ),
        conversation_turns=_int(item, "conversation_turns"),
        conversation_cost_usd=_float(item, "conversation_cost_usd"),
        sdk_session_cost_usd=_float(item, "sdk_session_cost_usd"),
    )
