"""The session registry in DynamoDB: which SDK session a chat continues, who may write it now
(``_leases.py``) and what each turn already produced (``_turn_records.py``), so a redelivery
never runs the model twice.

Items (one table, ``pk``/``sk`` strings, every item carries the TTL attribute ``expires_at``):

==============================  ==================  =========================================
pk                              sk                  holds
==============================  ==================  =========================================
``session|<canonical key>``     ``meta``            sdk_session_id, head_version, turns, cost_usd
                                                    (the chat's total), conversation_turns/_cost_usd
                                                    (since /new), conversation_started_at and
                                                    summarised_at (its first answer, the CLI's last
                                                    compaction of it), summaries_recorded_since
                                                    (``_leases.py``), sdk_session_cost_usd (the SDK's
                                                    running total), previous_session_ids, lease_*,
                                                    moved_from/transcripts_of/moved_to
                                                    (``_chat_moves.py``), undelivered_files,
                                                    undelivered_told_by_turn_id
                                                    (``_undelivered_files.py``)
``session|<canonical key>``     ``turn|<turn id>``  the recorded TurnResult of that turn
==============================  ==================  =========================================

The Telegram side keeps its own records in the same table (telegram-core: delivered chunks,
notices, the /usage setting, the producer's update dedup).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ._chat_moves import ChatMoveVerbs
from ._dynamo_table import ConditionFailed, TableStore, item_float, item_int, item_str, number
from ._keys import SessionKey
from ._leases import SUMMARIES_RECORDED_SINCE
from ._registry_keys import META, session_item_pk
from ._transcript_items import DAY_S
from ._turn_records import CONVERSATION_STARTED_AT, SUMMARISED_AT, TurnRecordVerbs
from ._undelivered_files import (
    NO_TURN_TOLD,
    TOLD_BY_TURN_ATTRIBUTE,
    UNDELIVERED_ATTRIBUTE,
    UndeliveredFiles,
    UndeliveredFilesVerbs,
    read_undelivered,
)


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
    # The chat (canonical key) under whose project this chat's transcripts are kept: set when
    # the chat moved to a new id (see ``_chat_moves.py``); None: its own.
    transcripts_of: str | None = None
    # The chat (canonical key) this one was before it moved; its turn records stay there.
    moved_from: str | None = None
    # Who runs the chat's turn now (a runtime's lease) and until when; None: nobody.
    lease_owner: str | None = None
    lease_expires_at: float = 0.0
    # Files of the last answer that did not reach the user, until a turn's agent is told.
    undelivered_files: UndeliveredFiles | None = None
    # When the conversation began: the /new that started it, or the first message after the
    # one before expired. None: the chat's first conversation (it began at ``created_at``),
    # or a record older than this field.
    conversation_started_at: float | None = None
    # When the CLI last compacted the conversation (summarised its earlier part, of which the
    # agent then keeps only the summary); None: never since it began, or since
    # ``summaries_recorded_since`` when that came later.
    summarised_at: float | None = None
    # Since when compactions are recorded (the first lease by a release that records them);
    # None: not yet, the item is older.
    summaries_recorded_since: float | None = None

    def history_expired(self, now: float, retention_days: int) -> bool:
        """Whether the chat, quiet since ``updated_at``, has outlived its history (its
        transcript lives ``retention_days`` after the last write; DynamoDB's TTL sweep of
        this record lags, up to days)."""
        return now - self.updated_at >= retention_days * DAY_S


class SessionRegistry(TableStore, ChatMoveVerbs, TurnRecordVerbs, UndeliveredFilesVerbs):
    """Session records, leases and turn results.

    ``dynamodb`` is a boto3 DynamoDB client; ``clock`` returns epoch seconds (tests pass a
    fake one to expire leases without sleeping). Every write refreshes the item's
    ``expires_at`` to now + ``retention_days``.
    """

    def get_session(self, key: SessionKey) -> SessionRecord | None:
        """The session's record, or None if it never ran a turn (or expired)."""
        item = self._table.get("get_session", session_item_pk(key), META)
        return None if item is None else _record(key, item)

    def start_new_session(self, key: SessionKey) -> SessionRecord | None:
        """Forget the current SDK session (for ``/new``); the next turn starts a fresh one.

        The old id moves to ``previous_session_ids``, so its transcript stays retrievable
        until it expires. Returns the updated record, or None if there was no session to
        forget (none yet, or a /new before it: /new's answer then names no previous one).
        Files of the old conversation's last answer that did not reach the user are forgotten
        too, and a list of them written late is not kept: the new conversation's agent has no
        answer they belong to.
        """
        # An update expression cannot copy one attribute into a list, so read the old id
        # first; the write is conditional on it, so a concurrent switch is not undone.
        record = self.get_session(key)
        if record is None or record.sdk_session_id is None:
            return None
        now = self._table.clock()
        try:
            out = self._table.update(
                "start_new_session",
                session_item_pk(key),
                META,
                UpdateExpression=(
                    "SET previous_session_ids = list_append(if_not_exists(previous_session_ids,"
                    " :empty), :old), updated_at = :now, expires_at = :ttl,"
                    " conversation_turns = :zero, conversation_cost_usd = :zero,"
                    f" sdk_session_cost_usd = :zero, {TOLD_BY_TURN_ATTRIBUTE} = :no_turn,"
                    f" {CONVERSATION_STARTED_AT} = :now"
                    f" REMOVE sdk_session_id, {UNDELIVERED_ATTRIBUTE}, {SUMMARISED_AT}"
                ),
                ConditionExpression="sdk_session_id = :old_id",
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":old": {"L": [{"S": record.sdk_session_id}]},
                    ":old_id": {"S": record.sdk_session_id},
                    ":zero": number(0),
                    ":no_turn": number(NO_TURN_TOLD),
                    ":now": number(now),
                    ":ttl": number(self._table.expires_at(now)),
                },
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            return self.get_session(key)  # someone else switched meanwhile; theirs stands
        return _record(key, out["Attributes"])


def _record(key: SessionKey, item: Mapping[str, Any]) -> SessionRecord:
    return SessionRecord(
        session_key=key,
        sdk_session_id=item_str(item, "sdk_session_id"),
        head_version=item_int(item, "head_version"),
        turns=item_int(item, "turns"),
        cost_usd=item_float(item, "cost_usd"),
        created_at=item_float(item, "created_at"),
        updated_at=item_float(item, "updated_at"),
        previous_session_ids=tuple(str(v["S"]) for v in item.get("previous_session_ids", {}).get("L", [])),
        conversation_turns=item_int(item, "conversation_turns"),
        conversation_cost_usd=item_float(item, "conversation_cost_usd"),
        sdk_session_cost_usd=item_float(item, "sdk_session_cost_usd"),
        transcripts_of=item_str(item, "transcripts_of"),
        moved_from=item_str(item, "moved_from"),
        lease_owner=item_str(item, "lease_owner"),
        lease_expires_at=item_float(item, "lease_expires_at"),
        undelivered_files=read_undelivered(item),
        conversation_started_at=item_float(item, CONVERSATION_STARTED_AT) or None,
        summarised_at=item_float(item, SUMMARISED_AT) or None,
        summaries_recorded_since=item_float(item, SUMMARIES_RECORDED_SINCE) or None,
    )
