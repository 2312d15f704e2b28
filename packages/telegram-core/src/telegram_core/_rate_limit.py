"""Message rate limits: a token bucket in DynamoDB. The producer checks incoming messages per
user (and per group chat) before enqueueing; the consumer spends a group's outgoing budget on
progress edits ([H], ``take``), so all consumers together stay inside Telegram's group limit.

The bucket is kept as GCRA (the "generic cell rate algorithm"): one attribute, ``tat``, the
theoretical arrival time in epoch milliseconds, in one item per owner (``pk``
``rate|<tenant>|user|<id>``, ``sk`` ``bucket``). With ``N`` messages a minute each message
costs ``60/N`` s of the bucket; a message is allowed when ``max(tat, now) + 60/N <= now + 60``
s, i.e. the bucket holds at most ``N`` messages and refills one every ``60/N`` s. So a flood
gets ``N`` at once and then one every ``60/N`` s; a steady sender under ``N`` a minute is never
held back. Rejected messages take nothing from the bucket (one the chat's limit refuses gives
its sender's slot back); one the producer could not queue after all gives its slot back
(``give_back``: Telegram sends it again).

One conditional UpdateItem per message in the common case. DynamoDB cannot compute
``max(tat, now)``, so the check writes whichever form fits what it last saw of the bucket
(idle: ``tat := now + 60/N`` if ``tat <= now``; busy: ``tat := tat + 60/N`` if ``now < tat <=
now + 60 - 60/N``). A failed condition returns the item (``ReturnValuesOnConditionCheckFailure``)
so a wrong guess is followed by the right form, never a blind retry, and an exhausted bucket
costs that one call. The message that first finds the bucket empty is answered with one
"slow down" (a second call marks the bucket ``noticed`` for a minute); every other refused
message of that minute is dropped silently, so a sustained flood hears one notice a minute.
"""

from __future__ import annotations

from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from session_core import get_logger

log = get_logger(__name__)

RateVerdict = Literal["allowed", "notify", "drop"]
_WINDOW_MS = 60_000
_CONDITION_FAILED = "ConditionalCheckFailedException"
# Lost races before the limiter lets a message through rather than spend more calls on it.
_MAX_ATTEMPTS = 4


class RateLimiter:
    """Token buckets per user (``per_user``) and per group chat (``per_chat``), in messages a
    minute; 0 turns a limit off. ``dynamodb`` is a boto3 DynamoDB client."""

    def __init__(
        self, *, dynamodb: Any, table: str, tenant: str, per_user: int = 0, per_chat: int = 0
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._tenant = tenant
        self.per_user = per_user
        self.per_chat = per_chat
        # The last ``tat`` seen per bucket in this container: picks the write form to try first.
        self._last_tat: dict[str, int] = {}
        self.calls = 0  # DynamoDB calls made (for tests and bench/producer.py)

    def check(
        self, *, user_id: int | None, chat_id: int, private: bool, now: float
    ) -> tuple[RateVerdict, str]:
        """The verdict for one more message, and which limit gave it ("user" or "chat").

        A storage failure lets the message through (the limit protects cost, not correctness).
        """
        counts_for_user = bool(self.per_user and user_id is not None)
        if counts_for_user:
            verdict = self._take(f"user|{user_id}", self.per_user, now)
            if verdict != "allowed":
                return verdict, "user"
        if self.per_chat and not private:
            verdict = self._take(f"chat|{chat_id}", self.per_chat, now)
            if verdict != "allowed":
                # Dropped after all: a busy group must not use up its members' own limits
                # (which hold in their private chats too). One more call, on this path only.
                if counts_for_user:
                    self._give_back(f"rate|{self._tenant}|user|{user_id}", self.per_user, now)
                return verdict, "chat"
        return "allowed", ""

    def give_back(self, *, user_id: int | None, chat_id: int, private: bool, now: float) -> None:
        """Return the slots ``check`` took for a message that was not queued after all (the
        webhook answered 5xx, so Telegram sends the same update again): that copy is counted
        then, and an outage's retries never make one message look like a flood. One
        UpdateItem per bucket ``check`` takes from; a failure keeps the slot taken (the
        copy may be refused as too fast, as it was before slots were given back); a slot
        ``check`` could not take (storage failed) is given back all the same, letting one
        message more through, as the limit errs that way."""
        owners = []
        if self.per_user and user_id is not None:
            owners.append((f"user|{user_id}", self.per_user))
        if self.per_chat and not private:
            owners.append((f"chat|{chat_id}", self.per_chat))
        for owner, per_minute in owners:
            self._give_back(f"rate|{self._tenant}|{owner}", per_minute, now)

    def _give_back(self, pk: str, per_minute: int, now: float) -> None:
        now_ms = round(now * 1000)
        cost_ms = -(-_WINDOW_MS // per_minute)
        self.calls += 1
        try:
            # GCRA adds each message's cost to ``tat``: taking one off undoes exactly one,
            # whatever came since. A bucket whose ``tat`` has passed is full: nothing to return.
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": pk}, "sk": {"S": "bucket"}},
                UpdateExpression="SET tat = tat - :cost",
                ConditionExpression="tat > :now",
                ExpressionAttributeValues={":cost": {"N": str(cost_ms)}, ":now": {"N": str(now_ms)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != _CONDITION_FAILED:
                log.warning("rate_limit_not_given_back", error=type(exc).__name__)
            return
        except BotoCoreError as exc:
            log.warning("rate_limit_not_given_back", error=type(exc).__name__)
            return
        if pk in self._last_tat:
            self._last_tat[pk] -= cost_ms

    def take(self, bucket: str, per_minute: int, *, now: float) -> bool:
        """Take one slot of ``bucket`` (a name of the caller's, e.g. ``out|chat|<id>``) that
        refills ``per_minute`` a minute; False when it is empty (nothing is taken then).
        Shared by every container that uses the same table and tenant."""
        return self._take(bucket, per_minute, now, notify=False) == "allowed"

    def _take(self, owner: str, per_minute: int, now: float, *, notify: bool = True) -> RateVerdict:
        pk = f"rate|{self._tenant}|{owner}"
        now_ms = round(now * 1000)
        cost_ms = -(-_WINDOW_MS // per_minute)  # ceil: never more than per_minute a minute
        tolerance_ms = (per_minute - 1) * cost_ms  # a full bucket takes exactly per_minute at once
        busy = self._last_tat.get(pk, 0) > now_ms
        try:
            for _ in range(_MAX_ATTEMPTS):
                old = self._write(pk, now_ms, cost_ms, tolerance_ms, busy=busy)
                if old is None:  # written
                    self._last_tat[pk] = max(self._last_tat.get(pk, 0), now_ms) + cost_ms
                    return "allowed"
                tat = int(old.get("tat", {}).get("N", "0"))
                self._last_tat[pk] = tat
                if tat - now_ms > tolerance_ms:
                    return self._refuse(pk, old, now_ms) if notify else "drop"
                busy = tat > now_ms  # the other form fits: try it
        except (ClientError, BotoCoreError) as exc:
            log.warning("rate_limit_unavailable", error=type(exc).__name__)
        return "allowed"

    def _write(
        self, pk: str, now_ms: int, cost_ms: int, tolerance_ms: int, *, busy: bool
    ) -> dict[str, Any] | None:
        """One conditional UpdateItem that takes ``cost_ms`` from the bucket; None when it was
        taken, else the item as it stood (the condition failed)."""
        values = {":now": {"N": str(now_ms)}, ":ttl": {"N": str(now_ms // 1000 + 2 * _WINDOW_MS // 1000)}}
        if busy:
            update = "SET tat = tat + :cost, expires_at = :ttl"
            condition = "tat > :now AND tat <= :last"
            values[":cost"] = {"N": str(cost_ms)}
            values[":last"] = {"N": str(now_ms + tolerance_ms)}
        else:
            update = "SET tat = :next, expires_at = :ttl"
            condition = "attribute_not_exists(tat) OR tat <= :now"
            values[":next"] = {"N": str(now_ms + cost_ms)}
        self.calls += 1
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": pk}, "sk": {"S": "bucket"}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != _CONDITION_FAILED:
                raise
            return dict(exc.response.get("Item") or {})
        return None

    def _refuse(self, pk: str, old: dict[str, Any], now_ms: int) -> RateVerdict:
        """The bucket is empty: "notify" for the first message that finds it so in a minute
        (it marks the bucket noticed for that minute), "drop" for the rest."""
        noticed_until = int(old.get("noticed_until", {}).get("N", "0"))
        if noticed_until > now_ms:
            return "drop"
        self.calls += 1
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": pk}, "sk": {"S": "bucket"}},
                UpdateExpression="SET noticed_until = :until",
                ConditionExpression="attribute_not_exists(noticed_until) OR noticed_until <= :now",
                ExpressionAttributeValues={
                    ":until": {"N": str(now_ms + _WINDOW_MS)},
                    ":now": {"N": str(now_ms)},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != _CONDITION_FAILED:
                raise
            return "drop"  # a concurrent message sent the notice
        return "notify"
