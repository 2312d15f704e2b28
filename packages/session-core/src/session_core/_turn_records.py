"""Turn records: the answer saved for each turn, written with the head advance in one
transaction (exactly once; the files the last answer did not deliver, which the turn's agent
was told of, are forgotten with it), and the cost (and, for a new one, the SDK session) of runs that
ended without a saved answer."""

from __future__ import annotations

from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from ._aws_errors import aws_error_code
from ._dynamo_table import ConditionFailed, DynamoTable, item_float, item_key, item_str, number
from ._errors import LeaseLostError, MessageDecodeError, StaleHeadError
from ._keys import SessionKey
from ._leases import Lease
from ._models import TurnResult, decode_turn_result, encode
from ._registry_keys import META, TURN_PREFIX, session_item_pk, turn_item_sk
from ._undelivered_files import TOLD_BY_TURN_ATTRIBUTE, UNDELIVERED_ATTRIBUTE

# An answer whose record is bigger than this is stored zstd-compressed ("result_codec"): a
# DynamoDB item holds at most 400 KB, and a long answer (a document the agent wrote out in the
# chat) compresses several times. Records written before it carry no codec.
_COMPRESS_ABOVE_BYTES = 16 * 1024
_ZSTD = "zstd"
# Meta item attributes /status reads (see ``SessionRecord``).
CONVERSATION_STARTED_AT = "conversation_started_at"
SUMMARISED_AT = "summarised_at"


class RecordedTurn(msgspec.Struct, frozen=True, kw_only=True):
    """A turn's saved answer and when it was saved (epoch seconds)."""

    recorded_at: float
    result: TurnResult


class TurnRecordVerbs:
    """The turn-record verbs of SessionRegistry (see ``_registry.py``)."""

    _table: DynamoTable

    def get_turn_result(self, key: SessionKey, turn_id: int) -> TurnResult | None:
        """The result recorded for turn ``turn_id`` (marked ``replayed=True``), or None."""
        recorded = self.get_turn_record(key, turn_id)
        return None if recorded is None else recorded.result

    def get_turn_record(self, key: SessionKey, turn_id: int) -> RecordedTurn | None:
        """The result recorded for turn ``turn_id`` (marked ``replayed=True``) and when it was
        recorded (the registry's clock, as ``SessionRecord.summarised_at``), or None."""
        item = self._table.get("get_turn_result", session_item_pk(key), turn_item_sk(turn_id))
        if item is None:
            return None
        result = msgspec.structs.replace(_recorded_result(item), replayed=True)
        return RecordedTurn(recorded_at=item_float(item, "recorded_at"), result=result)

    def recent_turns(self, key: SessionKey, *, limit: int) -> list[RecordedTurn]:
        """The ``limit`` answers saved last for the session, newest first (kept until their
        retention ends; a turn that failed has none). Reads every turn item of the session:
        for an operator's look, not for a turn."""
        items = self._table.query_prefix("recent_turns", session_item_pk(key), TURN_PREFIX)
        turns = [
            RecordedTurn(recorded_at=item_float(item, "recorded_at"), result=_recorded_result(item))
            for item in items
            if not self._table.expired(item)
        ]
        return sorted(turns, key=lambda turn: turn.recorded_at, reverse=True)[:limit]

    def record_turn(self, lease: Lease, *, result: TurnResult, new_conversation: bool = False) -> TurnResult:
        """Record ``result`` as the answer to its update and advance the head by one, atomically;
        answer with the result that counts for the update: ``result`` when this call recorded
        it, or the one an earlier run of the same update recorded first (``replayed=True``).
        ``new_conversation``: the run began a new conversation, its stored one gone (expired):
        the conversation's figures (/status's) start again from this turn, the chat's go on.
        A result ``summarised`` (the CLI compacted the history) marks the conversation so.

        One TransactWriteItems: the turn item (only if that update has none yet) and the
        session update (only if the head is still ``lease.head_version`` and the lease is
        still ours). Raises LeaseLostError or StaleHeadError when a condition fails; nothing
        is written then. No read follows a successful write."""
        if self._write_turn(lease, result, new_conversation):
            return result
        recorded = self.get_turn_result(lease.session_key, result.turn_id)
        if recorded is None or msgspec.structs.replace(recorded, replayed=False) == result:
            return result  # our own write landed before (a retry after a lost response)
        return recorded

    def _write_turn(self, lease: Lease, result: TurnResult, new_conversation: bool) -> bool:
        """The transaction of ``record_turn``; False when the update was recorded already."""
        key = lease.session_key
        if result.session_key != key.canonical:
            raise ValueError(
                f"TurnResult.session_key {result.session_key!r} is not the lease's {key.canonical!r}"
            )
        now = self._table.clock()
        ttl = number(self._table.expires_at(now))
        set_sdk_id = ", sdk_session_id = :sid" if result.session_id else ""
        conversation = (
            f" conversation_turns = :one, conversation_cost_usd = :cost, {CONVERSATION_STARTED_AT} = :now,"
            if new_conversation
            else " conversation_turns = if_not_exists(conversation_turns, :zero) + :one,"
            " conversation_cost_usd = if_not_exists(conversation_cost_usd, :zero) + :cost,"
        )
        removed: list[str] = []
        if result.summarised:
            conversation += f" {SUMMARISED_AT} = :now,"
        elif new_conversation:
            removed.append(SUMMARISED_AT)  # the expired conversation's summary is gone with it
        # The turn's agent was told of the files the last answer did not deliver (the
        # runtime tells every turn whose prompt reaches the model): told once.
        # Its id keeps an older turn's list written late from coming back.
        told_by = "" if result.stopped_before_start else f", {TOLD_BY_TURN_ATTRIBUTE} = :turn_id"
        if not result.stopped_before_start:
            removed.append(UNDELIVERED_ATTRIBUTE)
        removing = f" REMOVE {', '.join(removed)}" if removed else ""
        values: dict[str, Any] = {
            ":next": number(lease.head_version + 1),
            ":head": number(lease.head_version),
            ":owner": {"S": lease.owner},
            ":one": number(1),
            ":zero": number(0),
            ":cost": number(result.cost_usd),
            ":sdk_total": number(result.session_cost_usd),
            ":now": number(now),
            ":ttl": ttl,
        }
        if told_by:
            values[":turn_id"] = number(result.turn_id)
        if result.session_id:
            values[":sid"] = {"S": result.session_id}
        try:
            self._table.dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": {
                                **item_key(session_item_pk(key), turn_item_sk(result.turn_id)),
                                **_stored_result(result),
                                "recorded_at": number(now),
                                "expires_at": ttl,
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table.name,
                            "Key": item_key(session_item_pk(key), META),
                            "UpdateExpression": (
                                "SET head_version = :next, turns = turns + :one,"
                                " cost_usd = cost_usd + :cost, updated_at = :now,"
                                f"{conversation} sdk_session_cost_usd = :sdk_total,"
                                f" expires_at = :ttl{set_sdk_id}{told_by}{removing}"
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
                raise self._table.storage_error("record_turn", "TransactWriteItems", exc) from exc
            reasons = exc.response.get("CancellationReasons") or [{}, {}]
            turn_reason, session_reason = reasons[0], reasons[1]
            already_recorded = turn_reason.get("Code") == "ConditionalCheckFailed"
            if already_recorded and self._table.get("record_turn", session_item_pk(key), META) is not None:
                return False  # a retry changes nothing
            if session_reason.get("Code") != "ConditionalCheckFailed":
                raise self._table.storage_error("record_turn", "TransactWriteItems", exc) from exc
            current = session_reason.get("Item") or self._table.get("record_turn", session_item_pk(key), META)
            if not current or item_str(current, "lease_owner") != lease.owner:
                raise LeaseLostError(key.canonical, lease.owner) from exc
            raise StaleHeadError(key.canonical, lease.head_version) from exc
        except BotoCoreError as exc:
            raise self._table.storage_error("record_turn", "TransactWriteItems", exc) from exc
        return True

    def add_failed_turn_cost(
        self,
        key: SessionKey,
        cost_usd: float,
        *,
        session_cost_usd: float | None = None,
        continued_session: bool = False,
    ) -> None:
        """Add what a run that ended without a recorded answer (an error result) cost to the
        chat's and the conversation's totals; the turn count stays. ``session_cost_usd`` is
        the CLI's running total after that run when it continued the recorded SDK session:
        the CLI keeps counting the run even though the next turn resumes before it.
        ``continued_session``: the run resumed the recorded session, so the chat was in use
        (``updated_at``): the run wrote its history, which lives on from now. A run that began
        anew (the recorded one expired) leaves it: that history stays expired."""
        if not cost_usd > 0:
            raise ValueError(f"cost_usd must be > 0, got {cost_usd!r}")
        now = self._table.clock()
        values = {":cost": number(cost_usd), ":ttl": number(self._table.expires_at(now))}
        set_more = ""
        if continued_session:
            values[":now"] = number(now)
            set_more = ", updated_at = :now"
        if session_cost_usd is not None:
            values[":total"] = number(session_cost_usd)
            set_more += ", sdk_session_cost_usd = :total"
        self._table.update(
            "add_failed_turn_cost",
            session_item_pk(key),
            META,
            UpdateExpression=(
                f"ADD cost_usd :cost, conversation_cost_usd :cost SET expires_at = :ttl{set_more}"
            ),
            ExpressionAttributeValues=values,
        )

    def keep_unfinished_session(
        self,
        lease: Lease,
        session_id: str,
        *,
        session_cost_usd: float,
        conversation_cost_usd: float | None = None,
    ) -> None:
        """Make ``session_id`` the chat's SDK session though the run that began it ended
        without a saved answer (the head and the turn count stay): its tools ran, and only its
        transcript tells a retry where to resume and the next message what ran (a chat's first
        turn has no session before it). ``session_cost_usd`` is the CLI's running total of it.
        ``conversation_cost_usd``: the run began a new conversation, its stored one gone
        (expired): the conversation's figures (/status's) start again, with no turn and this
        cost (what the run added to the chat's); the chat's go on.
        Only while ``lease`` is held and the head has not moved; LeaseLostError if not."""
        now = self._table.clock()
        values: dict[str, Any] = {
            ":sid": {"S": session_id},
            ":total": number(session_cost_usd),
            ":now": number(now),
            ":ttl": number(self._table.expires_at(now)),
            ":owner": {"S": lease.owner},
            ":head": number(lease.head_version),
        }
        conversation = ""
        if conversation_cost_usd is not None:
            conversation = (
                ", conversation_turns = :zero, conversation_cost_usd = :conversation_cost,"
                f" {CONVERSATION_STARTED_AT} = :now REMOVE {SUMMARISED_AT}"
            )
            values |= {":zero": number(0), ":conversation_cost": number(conversation_cost_usd)}
        try:
            self._table.update(
                "keep_unfinished_session",
                session_item_pk(lease.session_key),
                META,
                UpdateExpression=(
                    "SET sdk_session_id = :sid, sdk_session_cost_usd = :total,"
                    f" updated_at = :now, expires_at = :ttl{conversation}"
                ),
                ConditionExpression="lease_owner = :owner AND head_version = :head",
                ExpressionAttributeValues=values,
            )
        except ConditionFailed as exc:
            raise LeaseLostError(lease.session_key.canonical, lease.owner) from exc


def _stored_result(result: TurnResult) -> dict[str, Any]:
    """The attributes that hold ``result`` in its turn item."""
    data = encode(result)
    if len(data) <= _COMPRESS_ABOVE_BYTES:
        return {"result": {"B": data}}
    import zstandard  # on first use: the zip functions import session_core

    return {"result": {"B": zstandard.ZstdCompressor(level=3).compress(data)}, "result_codec": {"S": _ZSTD}}


def _recorded_result(item: dict[str, Any]) -> TurnResult:
    data = item["result"]["B"]
    if item_str(item, "result_codec") == _ZSTD:
        import zstandard

        try:
            data = zstandard.ZstdDecompressor().decompress(data)
        except zstandard.ZstdError as exc:
            raise MessageDecodeError("TurnResult", f"recorded answer does not decompress: {exc}") from exc
    return decode_turn_result(data)
