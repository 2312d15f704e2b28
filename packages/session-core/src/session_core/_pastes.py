"""Long pastes: the parts of a text Telegram's apps split (over 4,096 characters) answered as
one turn, kept the way album parts are (``_albums``), in one item per sender.

The apps send such a text as several messages back to back, every part but the last cut
near the limit. A part near the limit may be followed by more; a shorter one is the last. A
continuation carries nothing that links it to the part before (no mention, no id), so each
plain text message of a sender is written to its sender's item (``pk``
``album|<session key>|paste-<sender>``, ``sk`` ``parts``), one UpdateItem whose condition
decides what it is:

- ``p<update_id>``, ``recorded_ids``, ``last_at``, ``starter``: as in an album item, for the
  paste being received;
- ``open_until``: while set and not passed, the last part was near the limit and a further
  part may still come; a shorter part removes it (the paste is complete), and so does
  gathering; the first part sent again (after the webhook failed) sets it anew: Telegram
  sends the chat's next updates only once the webhook took that one;
- ``answered`` and ``answered_by``: the update ids the last paste's turn answered and the one
  that started it, kept (with those parts) until the sender's next paste is gathered, so a
  retried turn gets the same parts and a part Telegram sends again is not a message anew
  (the parts go sooner when the next paste needs their room in the item: 400 KB);
- ``held<starter>``: the update ids of a complete paste whose turn had not gathered it when
  the sender's next paste started (its turn waits behind another one in the chat's queue, or
  it was never queued), kept for that turn; the next paste's gathering drops it.

A message near the limit starts a paste when none is open (in a group, only if addressed to
the bot), setting a complete one not yet gathered aside (a second UpdateItem); any message
joins the open one. A message that does neither fails the condition
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
_HELD_PREFIX = "held"
_TOO_LARGE = "ValidationException"  # the only one record's valid expressions meet: item over 400 KB
# How long after a part near the limit the next one may come and still be its continuation:
# the apps send the parts back to back and Telegram delivers a chat's updates one at a time,
# yet gaps over 1.5 s are seen (a slow uplink, the webhook's round trip, a cold start): 4 s
# leaves room, as a part missed is a second paid turn that saw half the text.
PART_GAP_S = 4.0
# How long a turn waits for the rest of a paste whose last part so far was near the limit
# (a long paste keeps extending the wait by PART_GAP_S): then it is answered with what came.
DEFAULT_WAIT_S = 10.0

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
        of its own; nothing is written). ``near_limit``: the text is long enough that the
        app may have cut it; ``addressed``: it may start a turn (in a group, addressed to
        the bot). One UpdateItem; two when it starts a paste while the sender's previous one
        waits for its turn (or was never queued): that one is set aside for its turn; a read
        and a write more when the item is full (``_drop_answered_parts``)."""
        now = self._table.clock()
        values = {**part_values(self._table, update_id, part, now=now), ":n": number(update_id)}
        update = SET_PART
        condition = "open_until >= :now"
        if near_limit:
            update += ", open_until = :until"
            values[":until"] = number(now + PART_GAP_S)
            if addressed:
                update += ", starter = if_not_exists(starter, :n)"
                # Or the first part again, the rest not come yet: Telegram holds a chat's next
                # updates until the webhook took the one it failed, so they follow it now.
                condition = (
                    f"(attribute_not_exists(starter) OR {condition}"
                    " OR (starter = :n AND attribute_exists(open_until)))"
                )
        else:
            update += " REMOVE open_until"  # the last part: the paste is complete
        pk = album_pk(session_key, paste_album_id(sender_id))
        names = {"#p": f"p{update_id}", "#held": f"{_HELD_PREFIX}{update_id}"}
        # Not a part a turn answered already, nor a paste set aside: Telegram sent it again.
        condition += " AND NOT contains(answered, :n) AND attribute_not_exists(#held)"
        for _ in range(3):  # a turn gathered the paste being set aside meanwhile: once more
            try:
                out = self._table.update(
                    "record",
                    pk,
                    _PARTS,
                    UpdateExpression=f"{update} ADD recorded_ids :id",
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except StorageError as exc:
                # The item is full (DynamoDB's 400 KB), most likely of the parts a paste answered
                # before keeps for a retried turn: a new paste's part needs that room more.
                starting = near_limit and addressed and exc.error_code == _TOO_LARGE
                if not (starting and self._drop_answered_parts(pk)):
                    raise
                continue
            except ConditionFailed as failed:
                before = failed.item or {}
                verdict = _recorded_before(before, update_id)
                if verdict != "alone" or not (near_limit and addressed) or "recorded_ids" not in before:
                    return verdict
                try:  # a complete paste its turn has not gathered yet: this one starts anew
                    self._table.update("record", pk, _PARTS, **_set_aside(before, update_id, values))
                except ConditionFailed:
                    continue
                return "starts"
            item = out.get("Attributes", {})
            return "starts" if item_int(item, "starter") == update_id else "joins"
        return "alone"

    def _drop_answered_parts(self, pk: str) -> bool:
        """Remove the parts of the paste answered last from the item ``pk``; False when it
        holds none (nothing to make room with)."""
        item = self._table.get("record", pk, _PARTS) or {}
        answered = {int(i) for i in item.get("answered", {}).get("NS", ())}
        receiving = {int(i) for i in item.get("recorded_ids", {}).get("NS", ())}
        names = {
            f"#d{n}": f"p{i}"
            for n, i in enumerate(i for i in recorded_parts(item) if i in answered - receiving)
        }
        if not names:
            return False
        with contextlib.suppress(ConditionFailed):  # another paste was answered meanwhile: try again
            self._table.update(
                "record",
                pk,
                _PARTS,
                UpdateExpression=f"REMOVE {', '.join(names)}",
                ConditionExpression="answered_by = :by",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":by": item["answered_by"]},
            )
        return True

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
        pk = album_pk(session_key, paste_album_id(sender_id))
        deadline = self._table.clock() + wait_s
        while True:
            item = self._table.get("gather", pk, _PARTS)
            if item is None:
                return []
            recorded = recorded_parts(item)
            if item_int(item, "answered_by") == starter:
                return [recorded[i] for i in sorted(recorded) if str(i) in item["answered"]["NS"]]
            held = item.get(f"{_HELD_PREFIX}{starter}")
            if held is not None:  # set aside when the sender's next paste started: complete
                try:
                    self._table.update("gather", pk, _PARTS, **_held_answered(starter, held))
                except ConditionFailed:
                    continue  # a retry of ours answered it meanwhile: read again
                return [recorded[i] for i in sorted(int(i) for i in held["NS"]) if i in recorded]
            if item_int(item, "starter") != starter or "recorded_ids" not in item:
                return []
            now = self._table.clock()
            if item_float(item, "open_until") >= now and now < deadline:
                sleep(min(0.25, deadline - now))
                continue
            ids = sorted(int(i) for i in item["recorded_ids"]["NS"])
            try:
                self._table.update("gather", pk, _PARTS, **_answered(item, recorded, starter, ids))
            except ConditionFailed:
                continue  # a part came meanwhile: read again
            return [recorded[i] for i in ids if i in recorded]

    def forget(self, session_key: str, sender_id: int, *, starter: int) -> None:
        """Drop the paste ``starter`` starts (never queued: its turn will not gather it), so
        that the sender's next messages are not kept for it."""
        # ConditionFailed: another paste started meanwhile, or it was gathered: nothing is open.
        with contextlib.suppress(ConditionFailed):
            self._table.update(
                "forget",
                album_pk(session_key, paste_album_id(sender_id)),
                _PARTS,
                UpdateExpression="REMOVE starter, open_until, recorded_ids",
                ConditionExpression="starter = :s",
                ExpressionAttributeValues={":s": number(starter)},
            )


def _recorded_before(item: dict[str, Any], update_id: int) -> PasteVerdict:
    """The verdict on a message whose condition failed: what it was when it was recorded before
    (Telegram sent it again), else "alone"."""
    if str(update_id) in item.get("recorded_ids", {}).get("NS", ()):
        return "starts" if item_int(item, "starter") == update_id else "joins"
    if f"{_HELD_PREFIX}{update_id}" in item:
        return "starts"
    return "joins" if str(update_id) in item.get("answered", {}).get("NS", ()) else "alone"


def _answered(item: dict[str, Any], recorded: dict[int, str], starter: int, ids: list[int]) -> dict[str, Any]:
    """The UpdateItem arguments that mark the paste ``starter`` answered with ``ids``, closing it
    and dropping the parts an earlier paste left, unless a part came since ``item`` was read."""
    names: dict[str, str] = {}
    removed = ["starter", "open_until", "recorded_ids"]
    # Pastes set aside started before this one: their turns came first (the chat's queue is
    # FIFO), or never will.
    stale = [f"p{i}" for i in recorded if i not in ids] + [n for n in item if n.startswith(_HELD_PREFIX)]
    for n, name in enumerate(stale):
        names[f"#s{n}"] = name
        removed.append(f"#s{n}")
    arguments: dict[str, Any] = {
        "UpdateExpression": f"REMOVE {', '.join(removed)} SET answered = :ids, answered_by = :s",
        "ConditionExpression": "starter = :s AND last_at = :seen",
        "ExpressionAttributeValues": {
            ":ids": {"NS": [str(i) for i in ids]},
            ":s": number(starter),
            ":seen": item["last_at"],
        },
    }
    if names:
        arguments["ExpressionAttributeNames"] = names
    return arguments


def _set_aside(item: dict[str, Any], update_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """The UpdateItem arguments that start the paste ``update_id`` (``values``: those of
    ``record``) over the complete one ``item`` holds, whose ids are kept for its turn, unless
    the item changed since it was read."""
    return {
        "UpdateExpression": (
            "SET #p = :part, last_at = :now, expires_at = :ttl, open_until = :until, starter = :n, "
            "recorded_ids = :id, #aside = :aside"
        ),
        "ConditionExpression": "starter = :old AND last_at = :seen",
        "ExpressionAttributeNames": {
            "#p": f"p{update_id}",
            "#aside": f"{_HELD_PREFIX}{item['starter']['N']}",
        },
        "ExpressionAttributeValues": {
            **values,
            ":aside": item["recorded_ids"],
            ":old": item["starter"],
            ":seen": item["last_at"],
        },
    }


def _held_answered(starter: int, held: dict[str, Any]) -> dict[str, Any]:
    """The UpdateItem arguments that mark the paste ``starter`` set aside answered."""
    return {
        "UpdateExpression": "REMOVE #held SET answered = :ids, answered_by = :s",
        "ConditionExpression": "attribute_exists(#held)",
        "ExpressionAttributeNames": {"#held": f"{_HELD_PREFIX}{starter}"},
        "ExpressionAttributeValues": {":ids": held, ":s": number(starter)},
    }
