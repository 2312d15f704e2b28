"""Message rate limits per user (and per group chat), counted in DynamoDB before enqueueing.

A sliding window over two fixed one-minute windows, in one item per user (``pk``
``rate|<tenant>|user|<id>``, ``sk`` ``window``): each message is one UpdateItem that adds 1 to
this minute's counter (``m<epoch minute>``), drops the counter of two minutes ago and returns
both live counters (``ALL_NEW``), so the check is one atomic round trip. The estimate
``previous * (share of the previous minute still inside the last 60 s) + current`` must stay
within the limit: a steady sender gets N messages a minute, a flood gets N and then nothing
until its rate falls (rejected messages count too: a flood does not earn a refill).

The message that first crosses the limit is answered with one "slow down" notice; the rest
of the window is dropped silently.
"""

from __future__ import annotations

from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from session_core import get_logger

log = get_logger(__name__)

RateVerdict = Literal["allowed", "notify", "drop"]
_WINDOW_S = 60
_TTL_S = 3 * _WINDOW_S


class RateLimiter:
    """Counts messages per user (``per_user``) and per group chat (``per_chat``) per minute;
    0 turns a limit off. ``dynamodb`` is a boto3 DynamoDB client."""

    def __init__(self, *, dynamodb: Any, table: str, tenant: str, per_user: int, per_chat: int) -> None:
        self._db = dynamodb
        self._table = table
        self._tenant = tenant
        self.per_user = per_user
        self.per_chat = per_chat

    def check(
        self, *, user_id: int | None, chat_id: int, private: bool, now: float
    ) -> tuple[RateVerdict, str]:
        """The verdict for one more message, and which limit gave it ("user" or "chat").

        One UpdateItem for the user; a group chat's own counter is a second one. A storage
        failure lets the message through (the limit protects cost, not correctness).
        """
        if self.per_user and user_id is not None:
            verdict = self._count(f"user|{user_id}", self.per_user, now)
            if verdict != "allowed":
                return verdict, "user"
        if self.per_chat and not private:
            verdict = self._count(f"chat|{chat_id}", self.per_chat, now)
            if verdict != "allowed":
                return verdict, "chat"
        return "allowed", ""

    def _count(self, owner: str, limit: int, now: float) -> RateVerdict:
        minute = int(now // _WINDOW_S)
        try:
            out = self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"rate|{self._tenant}|{owner}"}, "sk": {"S": "window"}},
                UpdateExpression="ADD #current :one SET expires_at = :ttl REMOVE #stale",
                ExpressionAttributeNames={"#current": f"m{minute}", "#stale": f"m{minute - 2}"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":ttl": {"N": str(int(now) + _TTL_S)}},
                ReturnValues="ALL_NEW",
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("rate_limit_unavailable", error=type(exc).__name__)
            return "allowed"
        item = out.get("Attributes", {})
        current = int(item.get(f"m{minute}", {}).get("N", "1"))
        previous = int(item.get(f"m{minute - 1}", {}).get("N", "0"))
        still_inside = 1 - (now - minute * _WINDOW_S) / _WINDOW_S
        estimate = previous * still_inside + current
        if estimate <= limit:
            return "allowed"
        # The message that first crossed the limit gets the notice; later ones are dropped.
        return "notify" if estimate - 1 <= limit else "drop"

