"""Deleting a transcript and reading the project's session index (listings, subkeys, liveness)."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from ._errors import SessionCoreError
from ._logging import get_logger
from ._transcript_append import Appending
from ._transcript_file import TranscriptFile
from ._transcript_format import (
    HEAD_SK,
    Location,
    StoredTranscript,
    locate,
)
from ._transcript_items import (
    _ReadCancelled,
    _SnapshotMissing,
    size_named_by_index,
    snapshot_named_by_index,
)
from ._transcript_load import EarlyRead, _SnapshotRead

_log = get_logger("session_core._transcript_store")


class Listings(Appending):
    def _delete_locked(self, location: Location) -> None:
        # Data first, index last: a delete that fails half-way can simply be repeated.
        targets = [location]
        if location.subpath is None:
            index = self._get_index_item(location)
            subpaths = index.get("subpaths", {}).get("SS", []) if index else []
            targets += [locate({**location.sdk_key(), "subpath": subpath}) for subpath in subpaths]
        for target in targets:
            with self._key_lock(target):
                items = self._query(target.pk, projection="pk, sk")
                keys = sorted((i["sk"]["S"] for i in items), key=lambda sk: sk != HEAD_SK)
                self._delete_items(target.pk, keys)  # head first: readers see "gone" at once
                self._forget(target)
        prefix = location.s3_prefix if location.subpath else location.session_s3_prefix
        self._delete_objects([obj["Key"] for obj in self._list_objects(prefix)])
        index_key = {"pk": {"S": location.index_pk}, "sk": {"S": location.index_sk}}
        if location.subpath is None:
            self._call("dynamodb", "delete_item", TableName=self._table, Key=index_key)
        else:
            self._remove_subpath(index_key, location.subpath)

    def _remove_subpath(self, index_key: dict[str, Any], subpath: str) -> None:
        with contextlib.suppress(ClientError):  # no index item: nothing to remove
            self._call(
                "dynamodb",
                "update_item",
                passthrough={"ConditionalCheckFailedException"},
                TableName=self._table,
                Key=index_key,
                UpdateExpression="DELETE subpaths :sub",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":sub": {"SS": [subpath]}},
            )

    def _load_for_restore_locked(
        self, location: Location, max_bytes: int | None, into: TranscriptFile | None = None
    ) -> tuple[StoredTranscript | None, list[str]]:
        """``load_stored`` with the session's subpaths, from one round trip: the index item
        (read beside the Query) names the snapshot, whose download starts before the Query
        returns. A cached transcript only catches up. Past ``max_bytes`` (the index item says
        so too) the snapshot is not read, nor anything cached (``TranscriptTooLargeError``)."""
        pool = ThreadPoolExecutor(2)
        early = None
        try:
            with self._key_lock(location):
                index = pool.submit(self._get_index_item, location)
                if location.subpath is None and self._cached(location) is None:
                    cancel = threading.Event()
                    read = pool.submit(self._read_named_snapshot, location, index, cancel, max_bytes, into)
                    early = EarlyRead(index, read, cancel, into)
                state = self._refresh_cache(location, early, max_bytes)
            subpaths = self._subpaths(index.result())
        finally:
            if early is not None:
                early.cancel.set()  # unused (no snapshot, or another one): it stops on its own
            pool.shutdown(wait=False)  # and nobody waits for it
        return (None if state is None else state.stored()), subpaths

    def _read_named_snapshot(
        self,
        location: Location,
        index: Future[dict[str, Any] | None],
        cancel: threading.Event,
        max_bytes: int | None,
        into: TranscriptFile | None = None,
    ) -> _SnapshotRead | None:
        item = index.result()
        ref = snapshot_named_by_index(item) if item is not None and self._live(item) else None
        if ref is None or not ref.key.startswith(location.s3_prefix):
            return None  # only this transcript's own objects are worth fetching early
        if max_bytes is not None and ref.raw_size is not None:  # else the load refuses nothing
            size = max(ref.raw_size, size_named_by_index(item) or 0)  # an older item: the snapshot's
            if size > max_bytes:
                return None  # the load will refuse it: not worth the download
        try:
            return self._read_snapshot(ref, cancel, into)
        except (SessionCoreError, _SnapshotMissing, _ReadCancelled):
            return None  # stale, damaged or unused: the head's own read meets (and reports) it

    def _subpaths(self, index_item: dict[str, Any] | None) -> list[str]:
        if index_item is None or not self._live(index_item):
            return []
        return sorted(index_item.get("subpaths", {}).get("SS", []))

    def _get_index_item(self, location: Location) -> dict[str, Any] | None:
        response = self._call(
            "dynamodb",
            "get_item",
            TableName=self._table,
            Key={"pk": {"S": location.index_pk}, "sk": {"S": location.index_sk}},
            ConsistentRead=True,
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _query_index(self, pk: str, projection: str) -> list[dict[str, Any]]:
        return self._query(pk, projection=projection)

    def _live(self, item: dict[str, Any]) -> bool:
        """False for an item past its TTL that DynamoDB's lagging sweep has not removed yet."""
        expires = item.get("expires_at", {}).get("N")
        return expires is None or float(expires) >= self._clock()
