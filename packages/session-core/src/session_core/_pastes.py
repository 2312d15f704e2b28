"""Long pastes: the parts of a text Telegram's apps split (over 4,096 characters) answered as
one turn, kept the way album parts are (``_albums``).

The apps send such a text as several messages back to back, every part but the last cut
near the limit. A part near the limit may be followed by more; a shorter one is the last. A
continuation carries nothing that links it to the part before (no mention, no id), so each
plain text message of a sender is written to its sender's item (``pk``
``album|<session key>|paste-<sender>``, ``sk`` ``sender``), one conditional UpdateItem that
decides what it is. DynamoDB bills a write (a failed conditional one too) by the size of the
item it touches, so that item stays a few hundred bytes and the parts go elsewhere:

- ``starter``: the update id of the paste being received, while it may still get parts;
  a shorter part removes it (the paste is complete), and so do gathering and ``forget``;
- ``open_until``: while set and not passed, the last part was near the limit and a further
  part may still come; the first part sent again (after the webhook failed) sets it anew:
  Telegram sends the chat's next updates only once the webhook took that one;
- ``paste``: the update id of the sender's latest paste, ``last_id`` the highest update id
  recorded (a message at or below it is one Telegram sent again), ``last_at`` when.

Each paste's parts are in an item of their own (``pk``
``album|<session key>|paste-<sender>-<starter>``, ``sk`` ``parts``; ``p<update_id>``,
``recorded_ids``, ``last_at`` as in an album item, then ``answered``: the ids its turn
answered, kept with the parts until the item expires, so a retried turn gets the same parts
and a part Telegram sends again is not a message anew), written only by the messages that
start or join that paste. A paste whose turn had not gathered it when its sender's next one
started (its turn waits behind another one in the chat's queue) keeps its item for that turn.

A message near the limit starts a paste when none is open (in a group, only if addressed to
the bot); any message joins the open one. A message that does neither fails the condition
and writes nothing: it is answered on its own, as before pastes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, Literal

from ._albums import SET_PART, album_pk, part_values, recorded_parts
from ._dynamo_table import ConditionFailed, TableStore, item_float, item_int, number
from ._errors import StorageError

_PARTS = "parts"
_SENDER = "sender"
# How long after a part near the limit the next one may come and still be its continuation:
# the apps send the parts back to back and Telegram delivers a chat's updates one at a time,
# yet gaps over 1.5 s are seen (a slow uplink, the webhook's round trip, a cold start): 4 s
# leaves room, as a part missed is a second paid turn that saw half the text.
PART_GAP_S = 4.0
# How long a turn waits for the rest of a paste whose last part so far was near the limit
# (a long paste keeps extending the wait by PART_GAP_S): then it is answered with what came.
DEFAULT_WAIT_S = 10.0
# The producer writes a part to its paste's item milliseconds after its sender's item; a turn
# that finds the part missing waits this long for it before answering without it.
_PART_WRITE_S = 1.0
_PART_WRITE_POLLS = 20
# Not a message Telegram sent again (one recorded before has an id at most ``last_id``).
_NEW = "(attribute_not_exists(last_id) OR last_id < :n)"
_OPEN = "open_until >= :now"

PasteVerdict = Literal["starts", "joins", "alone"]


def paste_album_id(sender_id: int) -> str:
    """The ``album_id`` of a sender's paste (InboundMessage), told apart from Telegram's
    ``media_group_id`` (digits) and forwards (``forwarded-…``) by its prefix."""
    return f"paste-{sender_id}"


def is_paste(album_id: str | None) -> bool:
    """Whether ``album_id`` names a paste (``paste_album_id``)."""
    return album_id is not None and album_id.startswith("paste-")


class PasteParts(TableStore):
    """The long pastes being received; ``dynamodb`` is a boto3 client, ``clock`` epoch seconds."""

    _label = "pastes"

    def record(
        self,
        session_key: str,
        sender_id: int,
        update_id: int,
        part: str,
        *,
        near_limit: bool,
        addressed: bool,
    ) -> PasteVerdict:
        """Record one plain text message of ``sender_id``: "starts" (queue it: its paste's
        turn), "joins" (answered with the part that starts it, or already was: a part
        Telegram sent again) or "alone" (no paste of the sender was open for it: a message
        of its own; nothing is written). One UpdateItem on the sender's small item, and one
        on the paste's item when it starts or joins a paste; a second one on the sender's
        item when it starts a paste while the previous one's last part was long (no part
        came since: the sender's item still names it); a read when Telegram sent it again."""
        sender = album_pk(session_key, paste_album_id(sender_id))
        now = self._table.clock()
        starting = near_limit and addressed
        values: dict[str, Any] = {
            ":n": number(update_id),
            ":now": number(now),
            ":ttl": number(self._table.expires_at(now)),
        }
        update = "SET last_id = :n, last_at = :now, expires_at = :ttl"
        condition = f"{_NEW} AND {_OPEN}"
        if near_limit:
            update += ", open_until = :until"
            values[":until"] = number(now + PART_GAP_S)
            if addressed:
                update += ", starter = if_not_exists(starter, :n), paste = if_not_exists(starter, :n)"
                # Or the first part again, the rest not come yet: Telegram holds a chat's next
                # updates until the webhook took the one it failed, so they follow it now.
                condition = (
                    f"({_NEW} AND (attribute_not_exists(starter) OR {_OPEN}))"
                    " OR (starter = :n AND attribute_exists(open_until))"
                )
        else:
            update += " REMOVE open_until, starter"  # the last part: the paste is complete
        for _ in range(3):  # another message of the sender came meanwhile: once more
            try:
                out = self._table.update(
                    "record",
                    sender,
                    _SENDER,
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                paste = item_int(out.get("Attributes", {}), "paste")
            except ConditionFailed as failed:
                before = failed.item or {}
                if update_id <= item_int(before, "last_id"):  # recorded before: Telegram sent it again
                    return self._recorded_before(session_key, sender_id, update_id, before)
                if not starting or "starter" not in before:
                    return "alone"
                # The sender's previous paste ended with a long part (its item still names
                # it): this one starts anew, and that one keeps its own item for its turn.
                try:
                    self._table.update("record", sender, _SENDER, **_start_over(before, values))
                except ConditionFailed:
                    continue
                paste = update_id
            return self._add_part(session_key, sender_id, paste, update_id, part, now=now)
        return "alone"

    def _add_part(
        self, session_key: str, sender_id: int, paste: int, update_id: int, part: str, *, now: float
    ) -> PasteVerdict:
        """Write the part ``update_id`` to the item of the paste ``paste`` its sender's item
        took it for; "alone" when that paste's turn already took its parts."""
        try:
            self._table.update(
                "record",
                _paste_pk(session_key, sender_id, paste),
                _PARTS,
                UpdateExpression=f"{SET_PART} ADD recorded_ids :id",
                ConditionExpression="attribute_not_exists(answered)",
                ExpressionAttributeNames={"#p": f"p{update_id}"},
                ExpressionAttributeValues=part_values(self._table, update_id, part, now=now),
            )
        except ConditionFailed:
            return "alone"  # written after its turn gathered the paste: a message of its own
        except StorageError:
            if paste == update_id:  # not recorded: no turn will gather it, nothing may join it
                with contextlib.suppress(StorageError):
                    self.forget(session_key, sender_id, starter=paste)
            raise
        return "starts" if paste == update_id else "joins"

    def _recorded_before(
        self, session_key: str, sender_id: int, update_id: int, sender: dict[str, Any]
    ) -> PasteVerdict:
        """What the message ``update_id`` Telegram sent again was when it was recorded: a part
        of the sender's latest paste, or the first part of an earlier one; else "alone"."""
        latest = item_int(sender, "paste")
        paste = latest if update_id >= latest else update_id
        item = self._table.get("record", _paste_pk(session_key, sender_id, paste), _PARTS) or {}
        if str(update_id) in item.get("answered", {}).get("NS", ()):
            return "joins"
        if str(update_id) in item.get("recorded_ids", {}).get("NS", ()):
            return "starts" if update_id == paste else "joins"
        return "alone"

    def gather(
        self,
        session_key: str,
        sender_id: int,
        *,
        starter: int,
        wait_s: float = DEFAULT_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[str]:
        """The parts of the paste ``starter`` starts (as recorded, in update order) once it is
        complete (its last part was short, or no part came for PART_GAP_S after a long one;
        at most ``wait_s``), marked answered so that a later part is a message of its own.
        Asked again (a retried turn), the same parts. Empty when ``starter`` starts no paste
        recorded here."""
        sender = album_pk(session_key, paste_album_id(sender_id))
        deadline = self._table.clock() + wait_s
        while True:
            item = self._table.get("gather", sender, _SENDER) or {}
            seen: dict[str, Any] | None = None  # when its last part was recorded, if it is the latest
            if item_int(item, "paste") == starter:
                seen = item["last_at"]
            if item_int(item, "starter") == starter:
                now = self._table.clock()
                if item_float(item, "open_until") >= now and now < deadline:
                    sleep(min(0.25, deadline - now))
                    continue
                try:  # no part joins it any more: a later one is a message of its own
                    self._table.update(
                        "gather",
                        sender,
                        _SENDER,
                        UpdateExpression="REMOVE starter, open_until",
                        ConditionExpression="starter = :s AND last_at = :seen",
                        ExpressionAttributeValues={":s": number(starter), ":seen": item["last_at"]},
                    )
                except ConditionFailed:
                    continue  # a part came meanwhile: read again
            return self._answer(session_key, sender_id, starter, seen, sleep)

    def _answer(
        self,
        session_key: str,
        sender_id: int,
        starter: int,
        seen: dict[str, Any] | None,
        sleep: Callable[[float], None],
    ) -> list[str]:
        """The parts of the complete paste ``starter``, marked answered (those it was answered
        with, when it was); ``seen``: when its sender's item took its last part."""
        pk = _paste_pk(session_key, sender_id, starter)
        polls = 0
        while True:
            item = self._table.get("gather", pk, _PARTS)
            if item is None:
                return []
            recorded = recorded_parts(item)
            if "answered" in item:
                return [recorded[i] for i in sorted(recorded) if str(i) in item["answered"]["NS"]]
            if seen is not None and item_float(item, "last_at") < float(seen["N"]):
                polls += 1  # its last part is being written (its sender's item took it)
                if self._table.clock() - float(seen["N"]) < _PART_WRITE_S and polls < _PART_WRITE_POLLS:
                    sleep(0.05)
                    continue
            ids = sorted(int(i) for i in item["recorded_ids"]["NS"])
            try:
                self._table.update(
                    "gather",
                    pk,
                    _PARTS,
                    # ``answered`` in place of ``recorded_ids``: never larger than the parts made it.
                    UpdateExpression="REMOVE recorded_ids SET answered = :ids",
                    ConditionExpression="attribute_not_exists(answered) AND last_at = :at",
                    ExpressionAttributeValues={
                        ":ids": {"NS": [str(i) for i in ids]},
                        ":at": item["last_at"],
                    },
                )
            except ConditionFailed:
                continue  # a part came meanwhile (or a retry of ours answered it): read again
            return [recorded[i] for i in ids if i in recorded]

    def forget(self, session_key: str, sender_id: int, *, starter: int) -> None:
        """Drop the paste ``starter`` starts (never queued: its turn will not gather it), so
        that the sender's next messages are not kept for it."""
        # ConditionFailed: another paste started meanwhile, or it was gathered: nothing is open.
        with contextlib.suppress(ConditionFailed):
            self._table.update(
                "forget",
                album_pk(session_key, paste_album_id(sender_id)),
                _SENDER,
                UpdateExpression="REMOVE starter, open_until",
                ConditionExpression="starter = :s",
                ExpressionAttributeValues={":s": number(starter)},
            )


def _paste_pk(session_key: str, sender_id: int, starter: int) -> str:
    return album_pk(session_key, f"{paste_album_id(sender_id)}-{starter}")


def _start_over(item: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The UpdateItem arguments that make the sender's item ``item`` name the paste ``:n``
    (``values``: those of ``record``) in place of the one it names, unless it changed since it
    was read."""
    return {
        "UpdateExpression": (
            "SET starter = :n, paste = :n, last_id = :n, last_at = :now, expires_at = :ttl,"
            " open_until = :until"
        ),
        "ConditionExpression": "starter = :old AND last_at = :seen",
        "ExpressionAttributeValues": {**values, ":old": item["starter"], ":seen": item["last_at"]},
    }
