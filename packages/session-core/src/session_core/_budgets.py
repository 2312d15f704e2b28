"""Spending caps per chat, per user and for the whole deployment, by UTC day and month.

Every capped account is one DynamoDB item per period (``pk`` ``budget|<scope>|<tenant>|<id>``,
``sk`` ``day|2026-12-02`` or ``month|2026-12``, TTL ``expires_at``) holding

- ``spent_usd``: what finished turns cost (what ``/cost`` shows);
- ``committed_usd``: ``spent_usd`` plus the per-turn cap of every turn still running (on
  capped accounts; an uncapped one counts costs there too, so a cap set later finds them).
  An account an older consumer counted uncapped has less there than it spent: the first hold
  on it brings it up to ``spent_usd`` plus what its hold records hold, so running turns are
  held on top of what was spent.
  One that changes under every catch-up (the older consumer still counting it) fails the hold
  as a transient StorageError: no running turn holds it, so no refusal says one does.

Once any cap is set, every turn is counted on the chat's, the user's and the deployment's
day and month (six items), so ``/cost`` knows what an uncapped account spent too; running
turns are held only on the capped ones.

Before a turn, one TransactWriteItems adds the per-turn cap to ``committed_usd`` of every
capped account, each on condition that it is still below its cap; after the turn another
settles the hold to the turn's real cost on every account. A recorded answer is counted once
(an item ``budget|answer|<tenant>|<session>|<update>`` is put in the same transaction, on
condition that it is new), so a retry that replays it counts it only if no attempt did.
A turn is admitted only while every account is below its cap, and a running turn can spend
at most the per-turn cap, so concurrent turns (one user in several chats) overspend a cap
together by less than one turn's cap.

Holds expire: with each one the transaction writes a hold record beside the account (``sk``
``hold|<period>|<hold id>``, with its ``deadline``, ``HOLD_LIFETIME_S`` after the hold). Settling
deletes it in the same transaction as the ADD. A consumer that crashed between hold and settle
leaves its record behind; when a cap refuses a turn, the account's records past their
deadline are released (their amount taken off ``committed_usd``, the record deleted, both in
one transaction) and the turn is tried once more. A settle that finds its record already
released counts the real cost without releasing twice.
"""

from __future__ import annotations

import calendar
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from ._aws_errors import aws_error_code, storage_error
from ._errors import StorageError
from ._keys import validate_tenant
from ._logging import get_logger

log = get_logger(__name__)

BudgetScope = Literal["chat", "user", "deployment"]
BudgetPeriod = Literal["day", "month"]
SCOPES: tuple[BudgetScope, ...] = ("chat", "user", "deployment")
PERIODS: tuple[BudgetPeriod, ...] = ("day", "month")
# Period items outlive their period by this long (for /cost of yesterday's hold to settle).
_KEEP_AFTER_PERIOD_S = 2 * 86_400
_CONFLICT_ATTEMPTS = 6
# A hold not settled within this long is taken for a crashed turn and may be released: longer
# than a turn can run (Lambda's 15 min) plus its settling.
HOLD_LIFETIME_S = 1_200


class BudgetCaps(msgspec.Struct, frozen=True, kw_only=True):
    """Caps in USD; None means no cap. ``turn_usd`` is the most one turn may spend (the
    SDK's ``max_budget_usd``) and what a running turn holds against the period caps."""

    chat_daily_usd: float | None = None
    chat_monthly_usd: float | None = None
    user_daily_usd: float | None = None
    user_monthly_usd: float | None = None
    deployment_daily_usd: float | None = None
    deployment_monthly_usd: float | None = None
    turn_usd: float | None = None

    def cap(self, scope: BudgetScope, period: BudgetPeriod) -> float | None:
        """The cap of ``scope`` per ``period``, or None."""
        value: float | None = getattr(self, f"{scope}_{'daily' if period == 'day' else 'monthly'}_usd")
        return value

    @property
    def any_period_cap(self) -> bool:
        """Whether any daily or monthly cap is set (else nothing is counted)."""
        return any(self.cap(s, p) is not None for s in SCOPES for p in PERIODS)


class BudgetExceeded(msgspec.Struct, frozen=True, kw_only=True):
    """The cap that refused a turn and when its period ends (epoch seconds, UTC)."""

    scope: BudgetScope
    period: BudgetPeriod
    cap_usd: float
    spent_usd: float
    resets_at: float
    # Only held: when enough of the holds filling it reach their deadline to admit a turn, or its
    # period ends if sooner (epoch seconds), at the latest (a running turn frees its hold sooner,
    # as it ends); None when spent outright, or when no hold record accounts for what is held.
    frees_by: float | None = None

    @property
    def only_held(self) -> bool:
        """Not spent: turns still running hold the per-turn cap on it, and it frees as they end."""
        return self.spent_usd < self.cap_usd


class BudgetHold(msgspec.Struct, frozen=True, kw_only=True):
    """What a running turn holds: the accounts it counts on (key, TTL), those with a cap
    it holds ``held_usd`` on."""

    accounts: tuple[tuple[tuple[str, str], int], ...] = ()
    held_on: tuple[tuple[str, str], ...] = ()
    held_usd: float = 0.0
    hold_id: str = ""  # names the hold records beside the capped accounts


class Spend(msgspec.Struct, frozen=True, kw_only=True):
    """What one account spent in its current period, against its cap."""

    scope: BudgetScope
    period: BudgetPeriod
    spent_usd: float
    cap_usd: float | None
    resets_at: float


def period_label(period: BudgetPeriod, now: float) -> str:
    """``2026-12-02`` for a day, ``2026-12`` for a month (UTC)."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


def period_end(period: BudgetPeriod, now: float) -> float:
    """When the UTC day or month that contains ``now`` ends (epoch seconds)."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC).timestamp()
        return start + 86_400
    days = calendar.monthrange(moment.year, moment.month)[1]
    return datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp() + days * 86_400


class BudgetLedger:
    """Holds, settles and reports spending against ``caps`` in the sessions table.

    ``dynamodb`` is a boto3 DynamoDB client; ``clock`` returns epoch seconds (tests move it
    across midnight and month ends).
    """

    def __init__(
        self,
        *,
        dynamodb: Any,
        table: str,
        caps: BudgetCaps,
        tenant: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        validate_tenant(tenant)
        self._db = dynamodb
        self._table = table
        self.caps = caps
        self._tenant = tenant
        self._clock = clock

    def now(self) -> float:
        """The ledger's clock (epoch seconds): periods and reset times are counted by it."""
        return self._clock()

    def hold(self, *, chat_id: int, user_id: int | None) -> BudgetHold | BudgetExceeded:
        """Admit a turn: hold the per-turn cap on every capped account of this day and month,
        or say which cap is reached (nothing is held then). One TransactWriteItems over the
        capped accounts only (fewer items, fewer conflicts between concurrent turns), none
        when no cap applies to them; a refusal first releases holds of crashed turns past
        their deadline (see the module)."""
        # repairs_left bounds the tries again after an account seen stale (caught up, or freed).
        return self._hold(chat_id=chat_id, user_id=user_id, repairs_left=2)

    def _hold(self, *, chat_id: int, user_id: int | None, repairs_left: int) -> BudgetHold | BudgetExceeded:
        if not self.caps.any_period_cap:
            return BudgetHold()
        now = self._clock()
        counted = self._accounts(chat_id, user_id, now)
        capped = [(scope, period, key) for scope, period, key in counted if self.caps.cap(scope, period)]
        # Monthly accounts first: of the caps reached, a refusal names the first, and one that said
        # "resets at midnight" while a monthly cap is reached too would refuse again at midnight.
        capped.sort(key=lambda account: account[1] != "month")
        if not capped:
            # The caps set apply to none of its accounts (only user caps, a message with no
            # user): admitted with nothing held; settling still counts it on every account.
            return BudgetHold(accounts=tuple((key, _ttl(period, now)) for _, period, key in counted))
        held = self.caps.turn_usd or 0.0
        hold_id = uuid.uuid4().hex
        items = []
        for scope, period, key in capped:
            cap = self.caps.cap(scope, period)
            assert cap is not None
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _key(*key),
                        "UpdateExpression": "ADD committed_usd :held SET expires_at = :ttl",
                        # committed_usd holds spent_usd (this code keeps it so on every
                        # account): one an older consumer counted uncapped, with less or none
                        # there, fails here and is brought up to what it spent (see below).
                        "ConditionExpression": (
                            "(attribute_not_exists(committed_usd) OR committed_usd < :cap)"
                            " AND (attribute_not_exists(spent_usd)"
                            " OR (spent_usd < :cap AND committed_usd >= spent_usd))"
                        ),
                        "ExpressionAttributeValues": {
                            ":held": _num(held),
                            ":cap": _num(cap),
                            ":ttl": _num(_ttl(period, now)),
                        },
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
            )
            if held:
                items.append(
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **_key(*_hold_key(key, hold_id)),
                                "held_usd": _num(held),
                                "deadline": _num(now + HOLD_LIFETIME_S),
                                "expires_at": _num(_ttl(period, now)),
                            },
                        }
                    }
                )
        reasons = self._write("hold", items)
        updates = [reason for reason, item in zip(reasons, items, strict=False) if "Update" in item]
        refused = [
            (scope, period, key, reason.get("Item") or self._get(key) or {})
            for (scope, period, key), reason in zip(capped, updates, strict=False)
            if reason.get("Code") == "ConditionalCheckFailed"
        ]
        if refused:
            behind = [(key, item) for _, _, key, item in refused if _committed_behind(item)]
            if behind and repairs_left:
                for key, item in behind:
                    self._catch_up_committed(key, item)
                return self._hold(chat_id=chat_id, user_id=user_id, repairs_left=repairs_left - 1)
            holds_left = [self._release_expired(key, now) for _, _, key, _ in refused]
            if any(left is None for left in holds_left):
                return self._hold(chat_id=chat_id, user_id=user_id, repairs_left=repairs_left)
            # Another consumer may have released (or a turn settled) what filled the caps
            # before this one read their holds: tried again while each has room now, not sent
            # to wait for holds that are gone.
            if repairs_left and all(
                self._room_now(scope, period, key, item) for scope, period, key, item in refused
            ):
                return self._hold(chat_id=chat_id, user_id=user_id, repairs_left=repairs_left - 1)
            reached = [
                BudgetExceeded(
                    scope=scope,
                    period=period,
                    cap_usd=self.caps.cap(scope, period) or 0.0,
                    spent_usd=_float(item, "spent_usd"),
                    resets_at=period_end(period, now),
                    frees_by=_frees_by(
                        item, self.caps.cap(scope, period) or 0.0, left or [], period_end(period, now)
                    ),
                )
                for (scope, period, _, item), left in zip(refused, holds_left, strict=True)
            ]
            # A cap spent outright is named before one only held by turns still running: told
            # "try again in a few minutes", the user would be refused again by the spent one.
            spent_cap = next((cap for cap in reached if not cap.only_held), None)
            if spent_cap is not None:
                return spent_cap
            if behind:
                # Each catch-up met the account changed (an older consumer still counting it):
                # no running turn holds what is missing, so "try again in a few minutes" would
                # be untrue. A transient failure: the record is tried again.
                raise StorageError(
                    "budget.hold",
                    f"DynamoDB table {self._table!r}: {len(behind)} account(s) an older consumer "
                    f"counted uncapped ({behind[0][0][0]} {behind[0][0][1]}) changed under each "
                    "catch-up of committed_usd to spent_usd",
                    error_code="ConditionalCheckFailedException",
                )
            # Every refusing cap is only held: the wait is until the last of them frees.
            frees = [cap.frees_by for cap in reached]
            latest = None if None in frees else max(t for t in frees if t is not None)
            return msgspec.structs.replace(reached[0], frees_by=latest)
        return BudgetHold(
            accounts=tuple((key, _ttl(period, now)) for _, period, key in counted),
            held_on=tuple(key for _, _, key in capped),
            held_usd=held,
            hold_id=hold_id if held else "",
        )

    def settle(self, hold: BudgetHold, cost_usd: float, *, answer: str | None = None) -> None:
        """Count the turn's real cost (0 for a turn that spent nothing) on every account and
        release what it held, in one transaction. ``answer`` names a recorded answer (session
        key and update): its cost counts once, whichever attempt settles first, the run that
        paid or a retry that replays it (the first may have died, or lost the runtime's
        reply, before settling); a later one only releases its own hold. A hold record
        released already (a crashed turn's) is not released twice."""
        if not hold.accounts:
            return
        cost = max(cost_usd, 0.0)
        claim = answer if cost else None
        released_before: set[tuple[str, str]] = set()
        for _ in range(len(hold.accounts) + 2):  # each round drops at least one failed condition
            items, guards = self._settlement(hold, cost, claim, released_before)
            reasons = self._write("settle", items)
            if not reasons:
                return
            for guard, reason in zip(guards, reasons, strict=False):
                if reason.get("Code") != "ConditionalCheckFailed" or guard is None:
                    continue
                if guard == "answer":  # another attempt counted it: release our hold only
                    cost, claim = 0.0, None
                else:
                    released_before.add(guard)
        raise AssertionError("unreachable")

    def _settlement(
        self,
        hold: BudgetHold,
        cost: float,
        claim: str | None,
        released_before: set[tuple[str, str]],
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str] | Literal["answer"] | None]]:
        """The settling transaction's items, each with what its condition guards: the
        account whose hold record it deletes, the answer's claim, or nothing (None)."""
        items: list[dict[str, Any]] = []
        guards: list[tuple[str, str] | Literal["answer"] | None] = []
        held_on = set(hold.held_on)
        for key, ttl in hold.accounts:
            values = {":cost": _num(cost), ":ttl": _num(ttl)}
            # committed_usd counts the cost on an uncapped account too: a cap the operator sets
            # on it later in the period must find what was spent before it.
            expression = "ADD spent_usd :cost, committed_usd :cost SET expires_at = :ttl"
            releases = key in held_on and hold.hold_id and key not in released_before
            if releases:
                expression = "ADD spent_usd :cost, committed_usd :delta SET expires_at = :ttl"
                values[":delta"] = _num(cost - hold.held_usd)
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _key(*key),
                        "UpdateExpression": expression,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
            guards.append(None)
            if releases:
                record = _key(*_hold_key(key, hold.hold_id))
                items.append(
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": record,
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    }
                )
                guards.append(key)
        if claim is not None:
            items.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **_key(f"budget|answer|{self._tenant}|{claim}", "counted"),
                            "expires_at": _num(max(ttl for _, ttl in hold.accounts)),
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
            guards.append("answer")
        return items, guards

    def spending(self, *, chat_id: int, user_id: int | None) -> list[Spend]:
        """This period's spend of the chat, the user (and the deployment, if capped): for
        ``/cost``. One BatchGetItem."""
        now = self._clock()
        wanted: list[tuple[BudgetScope, BudgetPeriod, tuple[str, str]]] = []
        for scope, ident in _owners(chat_id, user_id):
            if ident is None:
                continue
            for period in PERIODS:
                if scope == "deployment" and self.caps.cap("deployment", period) is None:
                    continue
                wanted.append((scope, period, self._account_key(scope, ident, period, now)))
        try:
            out = self._db.batch_get_item(
                RequestItems={
                    self._table: {"Keys": [_key(*key) for _, _, key in wanted], "ConsistentRead": True}
                }
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("spending", exc) from exc
        found = {
            (item["pk"]["S"], item["sk"]["S"]): item for item in out.get("Responses", {}).get(self._table, [])
        }
        return [
            Spend(
                scope=scope,
                period=period,
                spent_usd=_float(found.get(key, {}), "spent_usd"),
                cap_usd=self.caps.cap(scope, period),
                resets_at=period_end(period, now),
            )
            for scope, period, key in wanted
        ]

    def carry_chat_spend(self, *, from_chat: int, to_chat: int) -> None:
        """Count what chat ``from_chat`` spent this day and month on ``to_chat`` as well: the
        group became a supergroup under a new id, which must not start its caps afresh. Once
        per move: the account keeps a mark, so a retried move adds nothing."""
        now = self._clock()
        for period in PERIODS:
            spent = _float(self._get(self._account_key("chat", from_chat, period, now)) or {}, "spent_usd")
            if not spent:
                continue
            pk, sk = self._account_key("chat", to_chat, period, now)
            try:
                self._db.update_item(
                    TableName=self._table,
                    Key=_key(pk, sk),
                    UpdateExpression=(
                        "ADD spent_usd :spent, committed_usd :spent"
                        " SET carried_from = :from, expires_at = if_not_exists(expires_at, :ttl)"
                    ),
                    ConditionExpression="attribute_not_exists(carried_from)",
                    ExpressionAttributeValues={
                        ":spent": _num(spent),
                        ":from": {"N": str(from_chat)},
                        ":ttl": _num(_ttl(period, now)),
                    },
                )
            except ClientError as exc:
                if aws_error_code(exc) != "ConditionalCheckFailedException":
                    raise self._error("carry_chat_spend", exc) from exc
            except BotoCoreError as exc:
                raise self._error("carry_chat_spend", exc) from exc

    def deployment_daily_spent(self) -> float:
        """What the whole deployment spent today (UTC), holds of running turns excluded."""
        item = self._get(self._account_key("deployment", 0, "day", self._clock())) or {}
        return _float(item, "spent_usd")

    # -- plumbing ---------------------------------------------------------------------------

    def _accounts(
        self, chat_id: int, user_id: int | None, now: float
    ) -> list[tuple[BudgetScope, BudgetPeriod, tuple[str, str]]]:
        out: list[tuple[BudgetScope, BudgetPeriod, tuple[str, str]]] = []
        for scope, ident in _owners(chat_id, user_id):
            for period in PERIODS:
                if ident is not None:
                    out.append((scope, period, self._account_key(scope, ident, period, now)))
        return out

    def _account_key(
        self, scope: BudgetScope, ident: int, period: BudgetPeriod, now: float
    ) -> tuple[str, str]:
        owner = f"budget|{scope}|{self._tenant}" + ("" if scope == "deployment" else f"|{ident}")
        return owner, f"{period}|{period_label(period, now)}"

    def _write(self, operation: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write ``items`` in one transaction, retrying conflicts with concurrent turns. Empty
        when written; else DynamoDB's cancellation reasons, one per item, in order (some with
        ``Code`` ConditionalCheckFailed, and the item as it stood when asked for)."""
        for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
            try:
                self._db.transact_write_items(TransactItems=items)
                return []
            except ClientError as exc:
                if aws_error_code(exc) != "TransactionCanceledException":
                    raise self._error(operation, exc) from exc
                reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or []
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                    return reasons
                # TransactionConflict: another turn of a shared account at the same moment.
                if attempt == _CONFLICT_ATTEMPTS:
                    raise self._error(operation, exc) from exc
                time.sleep(random.uniform(0.01, 0.05) * attempt)
            except BotoCoreError as exc:
                raise self._error(operation, exc) from exc
        raise AssertionError("unreachable")

    def _release_expired(self, key: tuple[str, str], now: float) -> list[tuple[float, float]] | None:
        """Release the holds on account ``key`` whose turns did not settle by their deadline;
        None when any was released (here, or meanwhile by another consumer's refused turn: it
        freed the room all the same), else the holds still on it (deadline, amount held)."""
        released = False
        left: list[tuple[float, float]] = []
        for record in self._hold_records(key, "release_expired"):
            if _float(record, "deadline") > now:
                left.append((_float(record, "deadline"), _float(record, "held_usd")))
                continue
            items = [
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": _key(key[0], record["sk"]["S"]),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _key(*key),
                        "UpdateExpression": "ADD committed_usd :release",
                        "ExpressionAttributeValues": {":release": _num(-_float(record, "held_usd"))},
                    }
                },
            ]
            if not self._write("release_expired", items):
                held = _float(record, "held_usd")
                log.warning("budget.expired_hold_released", period=key[1], held_usd=held)
            # Its record gone otherwise: released by another consumer, or settled, since this
            # turn was refused. Either freed room this turn's refusal did not see: try again
            # (each record frees once, so the tries end).
            released = True
        return None if released else left

    def _room_now(
        self, scope: BudgetScope, period: BudgetPeriod, key: tuple[str, str], refused_by: dict[str, Any]
    ) -> bool:
        """Whether an account that refused a turn while only held (as ``refused_by``) is below
        its cap now; one spent outright has no room, and is not read."""
        cap = self.caps.cap(scope, period) or 0.0
        if _float(refused_by, "spent_usd") >= cap:
            return False
        return round(_float(self._get(key) or {}, "committed_usd"), 9) < cap  # nano-dollars (_num)

    def _hold_records(self, key: tuple[str, str], operation: str) -> list[dict[str, Any]]:
        """The hold records beside account ``key`` (its period's), read with one Query."""
        try:
            out = self._db.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": key[0]}, ":prefix": {"S": f"hold|{key[1]}|"}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(operation, exc) from exc
        records: list[dict[str, Any]] = out.get("Items", [])
        return records

    def _catch_up_committed(self, key: tuple[str, str], item: dict[str, Any]) -> None:
        """Bring ``committed_usd`` of an account an older consumer counted uncapped up to its
        ``spent_usd`` plus what its hold records hold (turns running now stay held on top),
        unless it changed meanwhile (then the next try reads it again)."""
        spent = item["spent_usd"]["N"]
        committed = item.get("committed_usd", {}).get("N")
        # An older consumer still running (a deploy under way) adds to spent_usd under holds
        # this code took: caught up to spent_usd alone, committed_usd lost those holds, and
        # turns were admitted past the cap by more than one turn's cap.
        held = sum(
            Decimal(record["held_usd"]["N"]) for record in self._hold_records(key, "catch_up_committed")
        )
        gap = Decimal(spent) + held - Decimal(committed or "0")
        unchanged = "spent_usd = :spent AND " + (
            "committed_usd = :committed" if committed is not None else "attribute_not_exists(committed_usd)"
        )
        values = {":gap": {"N": str(gap)}, ":spent": {"N": spent}}
        if committed is not None:
            values[":committed"] = {"N": committed}
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(*key),
                UpdateExpression="ADD committed_usd :gap",
                ConditionExpression=unchanged,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if aws_error_code(exc) != "ConditionalCheckFailedException":
                raise self._error("catch_up_committed", exc) from exc
            return
        except BotoCoreError as exc:
            raise self._error("catch_up_committed", exc) from exc
        log.warning("budget.committed_caught_up", period=key[1], gap_usd=float(gap))

    def _get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        try:
            out = self._db.get_item(TableName=self._table, Key=_key(*key), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("get", exc) from exc
        item: dict[str, Any] | None = out.get("Item")
        return item

    def _error(self, operation: str, exc: ClientError | BotoCoreError) -> StorageError:
        return storage_error(f"budget.{operation}", exc, context=f"DynamoDB table {self._table!r}")


def _committed_behind(item: dict[str, Any]) -> bool:
    # Written by an older consumer while the account had no cap: spent, never committed.
    if "spent_usd" not in item:
        return False
    return Decimal(item["spent_usd"]["N"]) > Decimal(item.get("committed_usd", {}).get("N", "0"))


def _frees_by(
    account: dict[str, Any], cap: float, holds: list[tuple[float, float]], period_ends: float
) -> float | None:
    """When enough of ``holds`` (deadline, amount) lapse, oldest first, for the account to
    be below ``cap`` again, or when its period ends if that is sooner (the next period's
    account holds nothing); None when spent outright or the holds are not enough."""
    if _float(account, "spent_usd") >= cap:
        return None
    committed = _float(account, "committed_usd")
    for deadline, held in sorted(holds):
        committed -= held
        if round(committed, 9) < cap:  # amounts are kept to the nano-dollar (_num)
            # A hold taken before midnight lapses up to 20 minutes into the next day: the
            # user was told to wait for it, while the new day admitted them at midnight.
            return min(deadline, period_ends)
    return None


def _hold_key(account: tuple[str, str], hold_id: str) -> tuple[str, str]:
    # Beside the account (same pk), named by its period, so one Query finds an account's holds.
    return account[0], f"hold|{account[1]}|{hold_id}"


def _ttl(period: BudgetPeriod, now: float) -> int:
    return int(period_end(period, now)) + _KEEP_AFTER_PERIOD_S


def _owners(chat_id: int, user_id: int | None) -> tuple[tuple[BudgetScope, int | None], ...]:
    return (("chat", chat_id), ("user", user_id), ("deployment", 0))


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _num(value: float) -> dict[str, str]:
    # Fixed point (no exponent), nano-dollar precision, no trailing zeros: "0.25", "-0.5", "0".
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return {"N": "0" if text in ("", "-0") else text}


def _float(item: dict[str, Any], name: str) -> float:
    return float(item[name]["N"]) if name in item else 0.0
