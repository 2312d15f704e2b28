"""[H] Claiming a chunk of an answer before it is sent, so two live deliveries of one record (a
visibility timeout shorter than a slow send, an operator's redrive while a consumer still runs)
never both send it.

The claim lives on the update's delivery item (``session|<key>`` / ``delivery|<update>``) next
to the ``chunk_<i>`` record of what was sent: ``claim_<i>`` (the claimant) and
``claim_until_<i>`` (epoch seconds). A claim is taken only when the chunk is not recorded as
sent and no other claimant's claim is still live; it expires, so a consumer that died before
sending never blocks the answer.

The one window left: a consumer that dies *inside* the send, or a send that fails without an
answer after Telegram took it (a timeout; the claim is then released for the retry), when the
record was not written, leaves an expiring claim; after ``hold_s`` a retry sends that one chunk again
(the Bot API has no idempotency key). The window is the send call itself, from the moment
Telegram takes the message until the consumer has its answer: measured here, a sendMessage of
a 3,000-character chunk to the local Bot API server takes 44 ms (p50; p99 48 ms, 200 calls);
against api.telegram.org it is one network round trip plus Telegram's processing (not
measured: no network here). The claim and record writes around it are not part of it. Nothing else can be
sent twice. A claim outlives a slow send only if renewed (the consumer renews every
``hold_s``/3 while it sends).
"""

from __future__ import annotations

import contextlib
from typing import Literal

from session_core import ConditionFailed, DynamoTable, SessionKey, number, session_item_pk

from ._delivery_log import delivery_sk

ClaimVerdict = Literal["claimed", "sent", "held"]
# The claimant renews its claim while a slow send runs; a dead one's claim lapses this soon.
DEFAULT_HOLD_S = 15.0


class DeliveryClaims:
    """Conditional claims on the chunks of an answer, in the registry's table."""

    def __init__(self, table: DynamoTable, *, hold_s: float = DEFAULT_HOLD_S) -> None:
        self._table = table
        self._hold_s = hold_s

    def claim(self, key: SessionKey, update_id: int, index: int, *, claimant: str) -> ClaimVerdict:
        """Claim chunk ``index`` of the answer to ``update_id`` for ``claimant`` (one delivery
        attempt): "claimed" (send it, then record it), "sent" (recorded: skip it) or "held"
        (another live delivery is sending it: do not send; come back later)."""
        if index < 0 or update_id < 0:
            raise ValueError(f"chunk index and update id must be >= 0, got {index}, {update_id}")
        now = self._table.clock()
        try:
            self._table.update(
                "claim",
                session_item_pk(key),
                delivery_sk(update_id),
                UpdateExpression="SET #claim = :me, #until = :until, expires_at = :ttl",
                ConditionExpression=(
                    "attribute_not_exists(#chunk) AND (attribute_not_exists(#until)"
                    " OR #until < :now OR #claim = :me)"
                ),
                ExpressionAttributeNames={
                    "#chunk": f"chunk_{index}",
                    "#claim": f"claim_{index}",
                    "#until": f"claim_until_{index}",
                },
                ExpressionAttributeValues={
                    ":me": {"S": claimant},
                    ":until": number(now + self._hold_s),
                    ":now": number(now),
                    ":ttl": number(self._table.expires_at(now)),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as exc:
            old = exc.item or self._table.get("claim", session_item_pk(key), delivery_sk(update_id)) or {}
            return "sent" if f"chunk_{index}" in old else "held"
        return "claimed"

    def release(self, key: SessionKey, update_id: int, index: int, *, claimant: str) -> None:
        """Give up ``claimant``'s claim on a chunk whose send failed (it was not sent), so a
        retry need not wait for the claim to lapse; a claim no longer ours is left alone."""
        with contextlib.suppress(ConditionFailed):
            self._table.update(
                "release",
                session_item_pk(key),
                delivery_sk(update_id),
                UpdateExpression="REMOVE #claim, #until",
                ConditionExpression="#claim = :me",
                ExpressionAttributeNames={"#claim": f"claim_{index}", "#until": f"claim_until_{index}"},
                ExpressionAttributeValues={":me": {"S": claimant}},
            )
