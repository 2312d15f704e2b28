"""The registry's DynamoDB table as a few verbs: read an item, put or update one (conditionally),
and the expiry every write refreshes. The session registry, the live turns and the Telegram
side's records are built on it, so the boto3 plumbing and its error mapping live once."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ._aws_errors import aws_error_code, storage_error
from ._errors import StorageError
from ._logging import get_logger
from ._settings import DEFAULT_RETENTION_DAYS

log = get_logger(__name__)

_DAY_S = 86_400
# An item kept alive is written again once its expiry is this far behind a new one's.
KEEP_ALIVE_AFTER_S = _DAY_S
CONDITION_FAILED = "ConditionalCheckFailedException"


class ConditionFailed(Exception):
    """Raised by ``DynamoTable.update`` / ``put`` when the write's ``ConditionExpression`` was
    false; the caller decides what that means (already done, someone else's, ...). ``item`` is
    the item as it was, when the write asked for it (``ReturnValuesOnConditionCheckFailure=
    "ALL_OLD"``) and there was one; None otherwise."""

    def __init__(self, operation: str, item: dict[str, Any] | None = None) -> None:
        super().__init__(operation)
        self.operation = operation
        self.item = item


class DynamoTable:
    """One table keyed by string ``pk``/``sk`` whose items carry the TTL attribute ``expires_at``.

    ``dynamodb`` is a boto3 DynamoDB client; ``clock`` returns epoch seconds (tests pass a fake
    one); ``retention_days`` is how long an item lives after its last write. Errors become
    StorageError with operation ``"<label>.<operation>"`` and the table's name in the message.
    """

    def __init__(
        self,
        *,
        label: str = "registry",
        dynamodb: Any,
        table: str,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if retention_days < 1:
            raise ValueError(f"retention_days must be >= 1, got {retention_days}")
        self.dynamodb = dynamodb
        self.name = table
        self.clock = clock
        self.label = label
        self._retention_s = retention_days * _DAY_S

    def expires_at(self, now: float) -> int:
        """The TTL (epoch seconds) of an item written at ``now``."""
        return int(now) + self._retention_s

    def expired(self, item: Mapping[str, Any]) -> bool:
        """Whether ``item`` is past its ``expires_at``: gone, though DynamoDB's TTL sweep may
        keep it for days more."""
        return 0 < item_int(item, "expires_at") < self.clock()

    def keep_alive(self, operation: str, pk: str, sk: str, expires_at: int) -> None:
        """The item ``pk``/``sk`` (read with ``expires_at``) is still in use: it expires
        ``retention_days`` from now again. Written at most once a day; one deleted meanwhile
        stays deleted. Never raises: a refused write (throttling) fails no read that makes it,
        and the next use tries again (the item has days left)."""
        now = self.clock()
        kept_until = self.expires_at(now)
        if not 0 < expires_at <= kept_until - KEEP_ALIVE_AFTER_S:
            return
        try:
            self.update(
                operation,
                pk,
                sk,
                UpdateExpression="SET expires_at = :ttl",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":ttl": number(kept_until)},
            )
        except ConditionFailed:
            pass
        except StorageError as exc:
            log.warning("keep_alive_failed", operation=operation, error_code=exc.error_code)

    def get(self, operation: str, pk: str, sk: str) -> dict[str, Any] | None:
        """The item (strongly consistent read), or None."""
        try:
            out = self.dynamodb.get_item(TableName=self.name, Key=item_key(pk, sk), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise self.storage_error(operation, "GetItem", exc) from exc
        item: dict[str, Any] | None = out.get("Item")
        return item

    def update(self, operation: str, pk: str, sk: str, **kwargs: Any) -> dict[str, Any]:
        """UpdateItem with ``kwargs`` (expressions, values, ``ReturnValues``); answers DynamoDB's
        response (its ``Attributes`` when ``ReturnValues`` asked for them); ConditionFailed
        when its condition is false."""
        return self._write(operation, "UpdateItem", self.dynamodb.update_item, Key=item_key(pk, sk), **kwargs)

    def put(self, operation: str, pk: str, sk: str, attributes: Mapping[str, Any], **kwargs: Any) -> None:
        """PutItem: the item ``pk``/``sk`` becomes ``attributes`` (whatever it held before is
        replaced); ``kwargs`` add a condition and its values; ConditionFailed when it is false."""
        self._write(
            operation, "PutItem", self.dynamodb.put_item, Item={**item_key(pk, sk), **attributes}, **kwargs
        )

    def delete(self, operation: str, pk: str, sk: str) -> dict[str, Any] | None:
        """DeleteItem; answers the item as it was (None when there was none)."""
        try:  # called here, not through _write: the template test finds each role's calls by name
            out = self.dynamodb.delete_item(TableName=self.name, Key=item_key(pk, sk), ReturnValues="ALL_OLD")
        except (ClientError, BotoCoreError) as exc:
            raise self.storage_error(operation, "DeleteItem", exc) from exc
        old: dict[str, Any] | None = out.get("Attributes") or None
        return old

    def query_prefix(self, operation: str, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        """The items of partition ``pk`` whose sort key starts with ``sk_prefix`` (every page)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": sk_prefix}},
            "ConsistentRead": True,
        }
        while True:
            try:
                out = self.dynamodb.query(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise self.storage_error(operation, "Query", exc) from exc
            items.extend(out.get("Items", []))
            if "LastEvaluatedKey" not in out:
                return items
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]

    def _write(self, operation: str, request: str, call: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        try:
            out: dict[str, Any] = call(TableName=self.name, **kwargs)
        except ClientError as exc:
            if aws_error_code(exc) == CONDITION_FAILED:
                raise ConditionFailed(operation, exc.response.get("Item")) from exc
            raise self.storage_error(operation, request, exc) from exc
        except BotoCoreError as exc:
            raise self.storage_error(operation, request, exc) from exc
        return out

    def storage_error(self, operation: str, request: str, exc: ClientError | BotoCoreError) -> StorageError:
        """The StorageError for a failed ``request`` (e.g. "UpdateItem") of ``operation``."""
        return storage_error(
            f"{self.label}.{operation}", exc, context=f"DynamoDB {request} on table {self.name!r}"
        )


class TableStore:
    """Base of the stores kept in the registry table (SessionRegistry, LiveTurns): built from the
    table's settings (as DynamoTable's), they reach their items through ``self._table``, whose
    errors name the store by ``_label``."""

    _label = "registry"

    def __init__(
        self,
        *,
        dynamodb: Any,
        table: str,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = DynamoTable(
            label=self._label, dynamodb=dynamodb, table=table, retention_days=retention_days, clock=clock
        )


def item_key(pk: str, sk: str) -> dict[str, Any]:
    """The DynamoDB key of an item."""
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def number(value: float) -> dict[str, str]:
    """A DynamoDB number attribute value, written in fixed point: Python spells a small float
    with an exponent ("3e-05", a cheap turn's cost), which DynamoDB Local and moto refuse."""
    if isinstance(value, int):
        return {"N": str(value)}
    return {"N": format(Decimal(repr(value)), "f")}


def item_str(item: Mapping[str, Any], name: str) -> str | None:
    """A string attribute of an item, or None."""
    value = item.get(name)
    return None if value is None else str(value["S"])


def item_int(item: Mapping[str, Any], name: str) -> int:
    """A number attribute of an item as an int (0 when absent)."""
    return int(item[name]["N"]) if name in item else 0


def item_float(item: Mapping[str, Any], name: str) -> float:
    """A number attribute of an item as a float (0.0 when absent)."""
    return float(item[name]["N"]) if name in item else 0.0


def check_update_id(update_id: int) -> int:
    """``update_id`` if it is a non-negative int (item keys embed it); ValueError otherwise."""
    if isinstance(update_id, bool) or not isinstance(update_id, int) or update_id < 0:
        raise ValueError(f"update_id must be a non-negative integer, got {update_id!r}")
    return update_id
