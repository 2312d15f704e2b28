"""Photo albums: the parts of one Telegram album (``media_group_id``) answered as one turn.

Telegram sends an album as one message per photo or file, the caption on one part only, all
within about a second. Each would otherwise be a turn of its own, paid for, and in a group
only the captioned (addressed) part would be seen at all. One item per album in the registry
table (``pk`` ``album|<session key>|<media_group_id>``, ``sk`` ``parts``) holds

- ``p<update_id>``: each part as the producer queued it (opaque text: the encoded message);
- ``starter``: the update id of the first part recorded that may start the album's turn (in a
  group, one addressed to the bot): the one part the producer queues;
- ``last_at``: when the last part was recorded; ``gathered``: the update ids the consumer
  answered together, once it did (in place of ``recorded_ids``, the same ids kept by
  ``record``: so gathering never makes the item larger than its parts made it);
- ``comment_id``: set with ``gathered`` when the turn of a text sent just before the album took
  it (the comment typed in Telegram's forward dialog): the update id of that text.

The producer records every part (``record``) and queues only the first addressed one; the
consumer, handling that one, waits until no part came for a moment and takes them all
(``gather``). A part recorded after that is late: the producer queues it on its own (if it is
addressed), as it would any message. Recording a part again (Telegram sends an update again
when the webhook failed) changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ._dynamo_table import (
    ConditionFailed,
    DynamoTable,
    TableStore,
    check_update_id,
    item_float,
    item_int,
    number,
)

PARTS_SK = "parts"  # the sort key of an album's item
_PART_PREFIX = "p"
# Telegram sends the parts of an album within about a second of each other.
DEFAULT_QUIET_S = 1.0
DEFAULT_WAIT_S = 4.0

AlbumVerdict = Literal["starts", "joins", "late"]


class AlbumParts(TableStore):
    """The albums being received; ``dynamodb`` is a boto3 client, ``clock`` epoch seconds."""

    _label = "albums"

    def record(
        self, session_key: str, album_id: str, update_id: int, part: str, *, addressed: bool
    ) -> AlbumVerdict:
        """Record one part: "starts" (queue it: its album's turn), "joins" (answered with the
        part that starts it, or already was: a part recorded again after the album's turn
        took it) or "late" (its album was answered without it: a message of its own).
        One UpdateItem."""
        values = part_values(self._table, update_id, part, now=self._table.clock())
        update = SET_PART
        if addressed:
            update += ", starter = if_not_exists(starter, :me)"
            values[":me"] = number(update_id)
        out = self._table.update(
            "record",
            album_pk(session_key, album_id),
            PARTS_SK,
            # ``recorded_ids``: the ids ``gather`` writes as ``gathered`` in its place, counted in
            # the item's size already (and named longer), so an item a part filled up to
            # DynamoDB's 400 KB can still be gathered.
            UpdateExpression=f"ADD recorded_ids :id {update}",
            ExpressionAttributeNames={"#p": f"{_PART_PREFIX}{update_id}"},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        item = out.get("Attributes", {})
        if "gathered" in item:  # answered already: with it (Telegram sent it again), or without
            return "joins" if str(update_id) in item["gathered"]["NS"] else "late"
        return "starts" if addressed and item_int(item, "starter") == update_id else "joins"

    def gather(
        self,
        session_key: str,
        album_id: str,
        *,
        quiet_s: float = DEFAULT_QUIET_S,
        wait_s: float = DEFAULT_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> GatheredAlbum:
        """The album's parts (as recorded, in update order) once none came for ``quiet_s`` (or
        ``wait_s`` passed), marked gathered so that a later part is "late". Asked again (a
        retried turn), the same parts. Empty when the album was never recorded. Its
        ``comment`` says when a comment's turn took it (``CommentAlbums``): its starter's turn
        then answers nothing."""
        gathered = self._gather(album_pk(session_key, album_id), quiet_s, wait_s, sleep)
        return gathered or GatheredAlbum(parts=[])

    def _gather(
        self,
        pk: str,
        quiet_s: float,
        wait_s: float,
        sleep: Callable[[float], None],
        *,
        comment: int | None = None,
        accepts: Callable[[list[str]], bool] | None = None,
    ) -> GatheredAlbum | None:
        """The album ``pk`` as gathered (for the turn of ``comment`` when given and
        ``accepts`` takes its parts); None when it was never recorded or ``accepts`` refused."""
        deadline = self._table.clock() + wait_s
        while True:
            item = self._table.get("gather", pk, PARTS_SK)
            if item is None:
                return None
            recorded = recorded_parts(item)
            if "gathered" in item:
                taken = [recorded[i] for i in sorted(recorded) if str(i) in item["gathered"]["NS"]]
                return GatheredAlbum(parts=taken, comment=item_int(item, "comment_id") or None)
            if accepts is not None and not accepts([recorded[i] for i in sorted(recorded)]):
                return None
            now = self._table.clock()
            if now - item_float(item, "last_at") < quiet_s and now < deadline:
                sleep(min(0.25, quiet_s))
                continue
            ids = sorted(recorded)
            values = {":ids": {"NS": [str(i) for i in ids]}, ":seen": item["last_at"]}
            update = "REMOVE recorded_ids SET gathered = :ids"
            if comment is not None:
                update += ", comment_id = :comment"
                values[":comment"] = number(comment)
            try:
                self._table.update(
                    "gather",
                    pk,
                    PARTS_SK,
                    UpdateExpression=update,
                    # Nothing recorded since we read: a part recorded now is "late".
                    ConditionExpression="attribute_not_exists(gathered) AND last_at = :seen",
                    ExpressionAttributeValues=values,
                )
            except ConditionFailed:
                continue  # another part came meanwhile (or a retry of ours gathered): read again
            return GatheredAlbum(parts=[recorded[i] for i in ids], comment=comment)


@dataclass(frozen=True)
class GatheredAlbum:
    """An album's parts as its turn took them (as recorded, in update order); ``comment``: the
    update id of the text whose turn took them (``CommentAlbums``), None for the album's own
    turn."""

    parts: list[str]
    comment: int | None = None


def forward_album_id(sender_id: int | None, sent_at: int) -> str:
    """The ``album_id`` of the messages ``sender_id`` forwarded together at ``sent_at`` (the
    second Telegram dates each of them with: one message each, all sent at once)."""
    return f"forwarded-{sender_id}-{sent_at}"


# What recording a part sets (``part_values`` names the values), for albums and pastes alike.
SET_PART = "SET #p = :part, last_at = :now, expires_at = :ttl"


def part_values(table: DynamoTable, update_id: int, part: str, *, now: float) -> dict[str, Any]:
    """The expression values of recording the part ``update_id`` at ``now`` (``SET_PART``,
    and ``:id``: its id as a set, to ADD to ``recorded_ids``)."""
    check_update_id(update_id)
    return {
        ":part": {"S": part},
        ":now": number(now),
        ":ttl": number(table.expires_at(now)),
        ":id": {"NS": [str(update_id)]},
    }


def album_pk(session_key: str, album_id: str) -> str:
    return f"album|{session_key}|{album_id}"


def recorded_parts(item: dict[str, Any]) -> dict[int, str]:
    """The parts an album item holds, by update id."""
    return {
        int(name[len(_PART_PREFIX) :]): value["S"]
        for name, value in item.items()
        if name.startswith(_PART_PREFIX) and name[len(_PART_PREFIX) :].isdigit()
    }
