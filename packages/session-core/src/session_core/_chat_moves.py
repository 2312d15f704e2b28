"""A chat that moved to a new id keeps its conversation: Telegram upgrades a group to a
supergroup under a new chat id, and without this the bot would forget everything said there.

The move copies what the old chat's partition says about its conversation (the meta item,
the pending approval, the "always" grants and whatever sort keys the channel adds, such as its
settings) into the new chat's partition, under the old chat's lease so no turn of it is half
done. The transcripts stay where they are: the new meta item names their project
(``transcripts_of``) and every later turn of the new chat reads and appends there. Turn
records and delivery logs stay behind (they answer retries of the old chat's updates). The
old chat lets go of the SDK session it handed on (as after /new, ``moved_to`` names where it
went): a record of it that still runs starts afresh, so one session never has two writers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from ._approvals import APPROVAL_SK, GRANT_PREFIX
from ._dynamo_table import ConditionFailed, DynamoTable, item_int, item_str, number
from ._keys import SessionKey
from ._leases import Lease, LeaseVerbs
from ._logging import get_logger
from ._registry_keys import META, session_item_pk

_log = get_logger("session_core._registry")

_MOVE_OWNER = "chat-move"
_MOVE_LEASE_S = 60.0
# The meta item's attributes that belong to a turn in progress or to the item itself.
_NOT_COPIED = frozenset({"pk", "sk", "lease_owner", "lease_expires_at", "expires_at", "session_key"})


class ChatMoveVerbs(LeaseVerbs):
    """The chat-move verb of SessionRegistry (see ``_registry.py``)."""

    _table: DynamoTable

    def move_chat(self, old: SessionKey, new: SessionKey, *, also: Sequence[str] = ()) -> bool:
        """Carry ``old``'s conversation over to ``new``; True if it was carried (now or by an
        earlier try); False: ``old`` had none, or ``new`` has one of its own, which is kept.

        Raises LeaseHeldError while a turn of ``old`` runs (retry later: its answer is part
        of what moves). ``also`` names more sort keys of the partition to copy as they are.
        Once carried, ``old`` no longer continues the SDK session (see the module).
        """
        lease = self.acquire_lease(old, owner=_MOVE_OWNER, duration_s=_MOVE_LEASE_S)
        try:
            meta = self._table.get("move_chat", session_item_pk(old), META)
            # A chat that started afresh (/new) still has its grants, settings and totals.
            if meta is None or (item_str(meta, "sdk_session_id") is None and not item_int(meta, "turns")):
                return False
            # The meta item is written last: once it names the old chat, all of it moved (and
            # the new chat may have gone on since; a repeat must not take it back).
            there = self._table.get("move_chat", session_item_pk(new), META)
            if there is None or item_str(there, "moved_from") != old.canonical:
                if there is not None and item_str(there, "sdk_session_id") is not None:
                    _log.warning("chat_move_skipped", old=old.canonical, new=new.canonical)
                    return False
                for sk in (APPROVAL_SK, *also):
                    item = self._table.get("move_chat", session_item_pk(old), sk)
                    if item is not None:
                        self._copy(new, sk, item)
                for grant in self._table.query_prefix("move_chat", session_item_pk(old), GRANT_PREFIX):
                    self._copy(new, grant["sk"]["S"], grant)
                there = self._receive_meta(old, new, meta)
                if there is None:
                    return False
                _log.info("chat_moved", old=old.canonical, new=new.canonical)
            self._let_go(lease, new, meta, there)
        finally:
            self.release_lease(lease)
        return True

    def _let_go(self, lease: Lease, new: SessionKey, meta: dict[str, Any], there: dict[str, Any]) -> None:
        """The old chat no longer continues the SDK session it handed on (as after /new): a
        record of it that still runs (a retry, a message queued before the move) starts afresh
        instead of writing the new chat's transcript beside it, under another lease."""
        handed_on = item_str(meta, "sdk_session_id")
        if handed_on is None or handed_on not in _session_ids(there):
            return  # nothing handed on, or the old chat started another session since
        now = self._table.clock()
        with contextlib.suppress(ConditionFailed):  # an earlier try let go already
            self._table.update(
                "move_chat",
                session_item_pk(lease.session_key),
                META,
                UpdateExpression=(
                    "SET previous_session_ids = list_append(if_not_exists(previous_session_ids,"
                    " :empty), :handed_on), moved_to = :new, updated_at = :now REMOVE sdk_session_id"
                ),
                ConditionExpression="sdk_session_id = :sid AND lease_owner = :owner",
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":handed_on": {"L": [{"S": handed_on}]},
                    ":new": {"S": new.canonical},
                    ":now": number(now),
                    ":sid": {"S": handed_on},
                    ":owner": {"S": lease.owner},
                },
            )

    def _copy(self, new: SessionKey, sk: str, item: dict[str, Any]) -> None:
        now = self._table.clock()
        attributes = {name: value for name, value in item.items() if name not in ("pk", "sk")}
        attributes["expires_at"] = number(self._table.expires_at(now))
        self._table.put("move_chat", session_item_pk(new), sk, attributes)

    def _receive_meta(self, old: SessionKey, new: SessionKey, meta: dict[str, Any]) -> dict[str, Any] | None:
        now = self._table.clock()
        attributes = {name: value for name, value in meta.items() if name not in _NOT_COPIED}
        attributes.update(
            session_key={"S": new.canonical},
            moved_from={"S": old.canonical},
            # Moved twice, the transcripts are still where the first chat wrote them.
            transcripts_of={"S": item_str(meta, "transcripts_of") or old.canonical},
            expires_at=number(self._table.expires_at(now)),
        )
        try:
            self._table.put(
                "move_chat",
                session_item_pk(new),
                META,
                attributes,
                ConditionExpression="attribute_not_exists(sdk_session_id)",
            )
        except ConditionFailed:  # a turn of the new chat started meanwhile: its conversation stands
            _log.warning("chat_move_skipped", old=old.canonical, new=new.canonical)
            return None
        return attributes


def _session_ids(meta: dict[str, Any]) -> set[str]:
    """The SDK sessions a meta item names: its current one and those before /new."""
    current = item_str(meta, "sdk_session_id")
    previous = {str(v["S"]) for v in meta.get("previous_session_ids", {}).get("L", [])}
    return previous if current is None else previous | {current}
