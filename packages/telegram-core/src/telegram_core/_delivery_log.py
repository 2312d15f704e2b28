"""What already went out for one update: the chunks of its answer (so a retried consumer sends
only what is missing) and the notices sent (so a redelivered update tells the user once).

One item per update in the session's partition: ``session|<key>`` / ``delivery|<update_id>``
holding ``chunk_<i>`` → Telegram message_id and ``notice_<kind>`` → when it was sent (and the
chunk claims of ``_delivery_claims.py``). A chunk Telegram refused as too long goes out in
halves, each recorded as ``half_<i>_<n>`` → message_id as it goes, so a retry sends only the
halves missing. Their prefix is not ``chunk_``: a consumer older than them reads the item as
before (and sends the chunk whole again, as it always did).

The chunk indices name the texts of one list: ``answer_chunks`` keeps the list of an answer's
text as its first delivery built it (zlib-compressed JSON), and every later delivery of it sends
that list, not one built anew: a retry may render the answer otherwise (the history notice is
not recorded with it, the usage footer is read afresh), and index N would then name another text.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import msgspec
from session_core import (
    ConditionFailed,
    DynamoTable,
    SessionKey,
    check_update_id,
    number,
    session_item_pk,
)

_NOTICE_KIND_RE = re.compile(r"[a-z0-9_]{1,64}")
_ANSWER_CHUNKS = "answer_chunks"
# Far below DynamoDB's 400 KB item (the chunk and claim attributes share it); an answer is at
# most ~100,000 characters, a few dozen KB compressed.
_MAX_KEPT_ANSWER_BYTES = 200_000
_chunk_list = msgspec.json.Decoder(list[str])


class DeliveryLog:
    """Delivered chunks and sent notices per update, in the registry's table."""

    def __init__(self, table: DynamoTable) -> None:
        self._table = table

    def delivered_chunks(self, key: SessionKey, update_id: int) -> dict[int, int]:
        """Chunks of the answer to ``update_id`` already sent: chunk index → Telegram message_id."""
        return self._sent_under("delivered_chunks", key, update_id, "chunk_")

    def record_delivered_chunk(self, key: SessionKey, update_id: int, index: int, message_id: int) -> None:
        """Remember that chunk ``index`` of the answer went out as ``message_id``."""
        if index < 0:
            raise ValueError(f"chunk index must be >= 0, got {index}")
        self._record_sent("record_delivered_chunk", key, update_id, f"chunk_{index}", message_id)

    def keep_answer_chunks(self, key: SessionKey, update_id: int, chunks: Sequence[str]) -> list[str]:
        """The text chunks of the answer to ``update_id`` as its first delivery kept them: kept
        now (``chunks``) unless a delivery before kept its own, which is answered instead. A
        list too large to keep is not kept (``chunks`` answered), as before such lists."""
        packed = zlib.compress(msgspec.json.encode(list(chunks)))
        if len(packed) > _MAX_KEPT_ANSWER_BYTES:
            return list(chunks)
        now = self._table.clock()
        out = self._table.update(
            "keep_answer_chunks",
            session_item_pk(key),
            delivery_sk(update_id),
            UpdateExpression="SET #chunks = if_not_exists(#chunks, :chunks), expires_at = :ttl",
            ExpressionAttributeNames={"#chunks": _ANSWER_CHUNKS},
            ExpressionAttributeValues={":chunks": {"B": packed}, ":ttl": number(self._table.expires_at(now))},
            ReturnValues="ALL_NEW",  # moto leaves an unchanged attribute out of UPDATED_NEW
        )
        return _chunk_list.decode(zlib.decompress(out["Attributes"][_ANSWER_CHUNKS]["B"]))

    def halves_sent(self, key: SessionKey, update_id: int, index: int) -> dict[int, int]:
        """The halves of chunk ``index`` (one Telegram refused as too long) already sent:
        half number (from 1) → Telegram message_id."""
        return self._sent_under("halves_sent", key, update_id, f"half_{index}_")

    def record_half_sent(
        self, key: SessionKey, update_id: int, index: int, half: int, message_id: int
    ) -> None:
        """Remember that half number ``half`` of chunk ``index`` went out as ``message_id``."""
        if index < 0 or half < 1:
            raise ValueError(f"chunk index must be >= 0 and half >= 1, got {index}, {half}")
        self._record_sent("record_half_sent", key, update_id, f"half_{index}_{half}", message_id)

    def _sent_under(self, operation: str, key: SessionKey, update_id: int, prefix: str) -> dict[int, int]:
        # What went out under ``prefix`` + number: number → Telegram message_id.
        item = self._table.get(operation, session_item_pk(key), delivery_sk(update_id)) or {}
        return {
            int(name.removeprefix(prefix)): int(value["N"])
            for name, value in item.items()
            if name.startswith(prefix)
        }

    def _record_sent(
        self, operation: str, key: SessionKey, update_id: int, name: str, message_id: int
    ) -> None:
        # One message that went out, as attribute ``name``; the item lives as long as the update's.
        now = self._table.clock()
        self._table.update(
            operation,
            session_item_pk(key),
            delivery_sk(update_id),
            UpdateExpression="SET #sent = :mid, expires_at = :ttl",
            ExpressionAttributeNames={"#sent": name},
            ExpressionAttributeValues={
                ":mid": number(message_id),
                ":ttl": number(self._table.expires_at(now)),
            },
        )

    def notice_sent(self, key: SessionKey, update_id: int, kind: str) -> bool:
        """Mark that notice ``kind`` (e.g. "busy") was sent for ``update_id``.

        True the first time only, so a redelivered update tells the user once.
        """
        if not _NOTICE_KIND_RE.fullmatch(kind):
            raise ValueError(f"notice kind must match {_NOTICE_KIND_RE.pattern}, got {kind!r}")
        now = self._table.clock()
        try:
            self._table.update(
                "notice_sent",
                session_item_pk(key),
                delivery_sk(update_id),
                UpdateExpression="SET #notice = :now, expires_at = :ttl",
                ConditionExpression="attribute_not_exists(#notice)",
                ExpressionAttributeNames={"#notice": f"notice_{kind}"},
                ExpressionAttributeValues={":now": number(now), ":ttl": number(self._table.expires_at(now))},
            )
        except ConditionFailed:
            return False
        return True


def delivery_sk(update_id: int) -> str:
    """The sort key of the update's delivery item (its chunks, notices and chunk claims)."""
    return f"delivery|{check_update_id(update_id)}"
