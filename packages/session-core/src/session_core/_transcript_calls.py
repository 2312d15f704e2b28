"""The transcript store's storage calls: every boto3 request goes through ``_call`` (counted
in ``requests``, errors mapped to StorageError), plus the paged queries and batch deletes."""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ._aws_errors import aws_error_code
from ._errors import StorageError
from ._logging import get_logger
from ._transcript_items import (
    FoldSummary,
    _State,
    _storage_error,
)

_log = get_logger("session_core._transcript_store")


class StorageCalls:
    """What every part of the store shares: clients, limits, the cache and the request count
    (set by ``TranscriptStore.__init__``), and the storage calls themselves."""

    _s3: Any
    _dynamodb: Any
    _bucket: str
    _table: str
    _fold_summary: FoldSummary | None
    _retention_s: float
    _chunk_limit: int
    _tail_limit: int
    _max_tail_chunks: int
    _refresh_after_s: float
    _orphan_grace_s: float
    _max_conflict_retries: int
    _cache_limit: int
    _clock: Callable[[], float]
    requests: Counter[tuple[str, str]]
    _lock: threading.Lock
    _key_locks: dict[str, threading.Lock]
    _cache: OrderedDict[str, _State]
    _cache_bytes: int
    _last_mtime_ms: int

    def _call(self, service: str, method: str, *, passthrough: set[str] | None = None, **kwargs: Any) -> Any:
        """One boto3 call: counted, and provider errors turned into StorageError."""
        operation = "".join(part[:1].upper() + part[1:] for part in method.split("_"))
        client = self._s3 if service == "s3" else self._dynamodb
        with self._lock:
            self.requests[(service, operation)] += 1
        try:
            return getattr(client, method)(**kwargs)
        except ClientError as exc:
            if passthrough and aws_error_code(exc) in passthrough:
                raise
            raise _storage_error(f"{service}.{operation}", exc) from exc
        except BotoCoreError as exc:
            raise _storage_error(f"{service}.{operation}", exc) from exc

    def _query(
        self, pk: str, *, start: str | None = None, projection: str | None = None
    ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk" + (" AND sk >= :start" if start else ""),
            "ExpressionAttributeValues": {":pk": {"S": pk}},
        }
        if start:
            kwargs["ExpressionAttributeValues"][":start"] = {"S": start}
        if projection:
            names = [p.strip() for p in projection.split(",")]
            kwargs["ProjectionExpression"] = ", ".join(f"#a{i}" for i in range(len(names)))
            kwargs["ExpressionAttributeNames"] = {f"#a{i}": n for i, n in enumerate(names)}
            if "sk" not in names:
                kwargs["ProjectionExpression"] += ", sk"
        items: list[dict[str, Any]] = []
        while True:
            response = self._call("dynamodb", "query", **kwargs)
            items.extend(response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                return items
            kwargs["ExclusiveStartKey"] = last

    def _delete_chunks(self, pk: str, garbage: Mapping[str, str | None]) -> None:
        """Delete chunk items, each only while it holds the epoch it was found with (a new epoch
        reuses sort keys: a chunk another writer has just put under one must stay). Conditions
        need TransactWriteItems; up to 100 deletes a request."""
        doomed = sorted(garbage.items())
        for start in range(0, len(doomed), 100):
            deletes = [_chunk_delete(self._table, pk, sk, epoch) for sk, epoch in doomed[start : start + 100]]
            while deletes:
                try:
                    self._call(
                        "dynamodb",
                        "transact_write_items",
                        passthrough={"TransactionCanceledException"},
                        TransactItems=deletes,
                    )
                    break
                except ClientError as exc:
                    # One chunk rewritten (or already gone) cancels them all: delete the others
                    # (fewer each time: another writer may be rewriting more of them meanwhile).
                    reasons = exc.response.get("CancellationReasons", [])
                    others = [d for d, r in zip(deletes, reasons, strict=False) if r.get("Code") == "None"]
                    if len(others) == len(deletes) or len(reasons) != len(deletes):
                        raise _storage_error("dynamodb.TransactWriteItems", exc) from exc
                    deletes = others

    def _list_objects(self, prefix: str) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix}
        objects: list[dict[str, Any]] = []
        while True:
            response = self._call("s3", "list_objects_v2", **kwargs)
            objects.extend(response.get("Contents", []))
            if not response.get("IsTruncated"):
                return objects
            kwargs["ContinuationToken"] = response["NextContinuationToken"]

    def _delete_objects(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            response = self._call(
                "s3",
                "delete_objects",
                Bucket=self._bucket,
                Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True},
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StorageError(
                    "s3.DeleteObjects",
                    f"{len(response['Errors'])} objects not deleted, e.g. {first.get('Key')}: "
                    f"{first.get('Message')}",
                    error_code=first.get("Code"),
                )

    def _best_effort_delete_objects(self, keys: list[str]) -> None:
        if not keys:
            return
        try:
            self._delete_objects(keys)
        except StorageError as exc:
            _log.warning("transcript_gc_failed", objects=len(keys), error=str(exc))


def _chunk_delete(table: str, pk: str, sk: str, epoch: str | None) -> dict[str, Any]:
    delete: dict[str, Any] = {"TableName": table, "Key": {"pk": {"S": pk}, "sk": {"S": sk}}}
    if epoch is None:
        delete["ConditionExpression"] = "attribute_not_exists(epoch)"
    else:
        delete["ConditionExpression"] = "epoch = :epoch"
        delete["ExpressionAttributeValues"] = {":epoch": {"S": epoch}}
    return {"Delete": delete}
