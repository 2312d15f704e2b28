"""Deleting a transcript, or a session with its subpaths, while a stale writer may still append.

However the two interleave, a load afterwards finds nothing, or only what was appended after
the delete, as a transcript of its own (a new epoch); nothing such a transcript needs is
deleted, and the deleted one's items and objects go with it.

A main key's delete takes the subpaths its index item lists; each of these transcripts goes
in this order:

1. Its head is retired in place: one conditional update (on the token of the write that put
   it there) moves its version on and its expiry into the past. Loads read it as absent; a
   writer holding the old version fails its condition, reads the head (absent) and starts a new
   epoch over it. A writer that came in first moves the token on, and the delete reads again.
2. Chunks go while they hold the epoch they were found with (a new epoch reuses their keys).
3. Snapshots go from the retired epoch's folder (every object of it, however young), and from
   elsewhere under the transcript's prefix those named by no epoch (written before the folders)
   or older than ``orphan_grace_s`` (a young one may be a new epoch's, not committed yet).
4. The retired head goes, while it is still the one retired; until then a delete that failed
   half-way finds it and knows which epoch to finish.

Last, the session's index item: deleted when nothing under it is live any more, else it keeps
only what is (an append after the delete made a new transcript). Every append counts itself
in the item's ``writes``; the delete changes the item only while the count is the one it read
before looking at the heads, so it never undoes an append that came after that look.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ._errors import StaleHeadError
from ._transcript_append import Appending
from ._transcript_format import CHUNK_SK_PREFIX, HEAD_SK, Location, locate
from ._transcript_items import DAY_S, snapshot_epoch

# What the index item says of the main transcript (list_sessions, summaries, restore hints).
_MAIN_ATTRIBUTES = "has_main, main_mtime, main_size, main_snap, summary"


@dataclass(frozen=True)
class _Retired:
    """A transcript whose head a delete has retired (or found none of)."""

    location: Location
    epoch: str | None  # of the retired head (None: there was none)
    token: str | None  # the retired head's write token, to remove it by


class Deleting(Appending):
    def _delete_locked(self, location: Location) -> None:
        targets = [location]
        if location.subpath is None:
            index = self._get_index_item(location)
            subpaths = index.get("subpaths", {}).get("SS", []) if index else []
            targets += [locate({**location.sdk_key(), "subpath": subpath}) for subpath in subpaths]
        retired: dict[str, _Retired] = {}
        for target in targets:
            with self._key_lock(target):
                retired[target.s3_prefix] = self._retire_and_clear(target)
                self._forget(target)
        # One listing for the whole session (a main key's delete), not one per transcript.
        prefix = location.session_s3_prefix if location.subpath is None else location.s3_prefix
        now = self._clock()
        objects = self._list_objects(prefix)
        self._delete_objects([obj["Key"] for obj in objects if self._doomed(obj, retired, now)])
        for gone in retired.values():
            if gone.token is not None:
                head = {"pk": {"S": gone.location.pk}, "sk": {"S": HEAD_SK}}
                self._delete_if(head, "tx = :tx", {":tx": {"S": gone.token}})
        self._settle_index(location)

    def _retire_and_clear(self, location: Location) -> _Retired:
        """Retire the head (reading again while writers move it) and delete the chunks found."""
        seen = 0
        for _ in range(self._max_conflict_retries + 1):
            items = self._query(location.pk, projection="pk, sk, v, epoch, tx")
            head = next((item for item in items if item["sk"]["S"] == HEAD_SK), None)
            token = self._retire_head(location, head) if head is not None else None
            if head is None or token is not None:
                break
            seen = int(head.get("v", {}).get("N", 0))
        else:
            raise StaleHeadError(location.describe(), seen)
        garbage = {
            item["sk"]["S"]: item.get("epoch", {}).get("S")
            for item in items
            if item["sk"]["S"].startswith(CHUNK_SK_PREFIX)
        }
        self._delete_chunks(location.pk, garbage)
        epoch = head.get("epoch", {}).get("S") if head is not None else None
        return _Retired(location, epoch, token)

    def _doomed(self, obj: dict[str, Any], retired: dict[str, _Retired], now: float) -> bool:
        """Whether a delete removes this object: every one of a retired epoch or of none (written
        before the folders), and another epoch's once too old to be an upload still in flight
        (a young one may be a new transcript's, its head not written yet)."""
        key = obj["Key"]
        for prefix, gone in retired.items():
            if key.startswith(prefix):
                epoch = snapshot_epoch(gone.location, key)
                old = now - obj["LastModified"].timestamp() >= self._orphan_grace_s
                return epoch is None or epoch == gone.epoch or old
        return False  # of a transcript the delete did not retire (not listed): not its to judge

    def _retire_head(self, location: Location, head: dict[str, Any]) -> str | None:
        """Move the head's version on and its expiry into the past, if no write came since it was
        read; the token it then carries (None: it moved, read it again)."""
        token = uuid.uuid4().hex
        try:
            self._call(
                "dynamodb",
                "update_item",
                passthrough={"ConditionalCheckFailedException"},
                TableName=self._table,
                Key={"pk": {"S": location.pk}, "sk": {"S": HEAD_SK}},
                # A day in the past: absent to every reader even with a clock a little behind.
                UpdateExpression="SET v = if_not_exists(v, :zero) + :one, expires_at = :past, tx = :token",
                ConditionExpression="tx = :tx" if "tx" in head else "attribute_not_exists(tx)",
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":past": {"N": str(int(self._clock() - DAY_S))},
                    ":token": {"S": token},
                    **({":tx": head["tx"]} if "tx" in head else {}),
                },
            )
        except ClientError:
            return None
        return token

    def _settle_index(self, location: Location) -> None:
        """The session's index item after its transcripts' deletion: gone if nothing it lists is
        live, else listing only what is (a main key settles the whole item, a subpath its own)."""
        key = {"pk": {"S": location.index_pk}, "sk": {"S": location.index_sk}}
        for _ in range(self._max_conflict_retries + 1):
            item = self._get_index_item(location)
            if item is None:
                return
            listed = item.get("subpaths", {}).get("SS", [])
            considered = listed if location.subpath is None else [s for s in listed if s == location.subpath]
            sdk_key = location.sdk_key()
            dead = [s for s in considered if not self._head_is_live(locate({**sdk_key, "subpath": s}))]
            main_dead = location.subpath is None and not self._head_is_live(location)
            writes = item.get("writes", {}).get("N")
            condition = "writes = :writes" if writes is not None else "attribute_not_exists(writes)"
            values: dict[str, Any] = {":writes": {"N": writes}} if writes is not None else {}
            if main_dead and len(dead) == len(listed):
                done = self._delete_if(key, condition, values)
            elif main_dead or dead:
                update = f"REMOVE {_MAIN_ATTRIBUTES}" if main_dead else ""
                if dead:
                    update += " DELETE subpaths :dead"
                    values[":dead"] = {"SS": dead}
                done = self._update_if(key, update.strip(), condition, values)
            else:
                return
            if done:
                return
        raise StaleHeadError(location.describe(), 0)

    def _head_is_live(self, location: Location) -> bool:
        items = self._query(location.pk, start=HEAD_SK, projection="pk, expires_at")
        head = next((item for item in items if item["sk"]["S"] == HEAD_SK), None)
        return head is not None and self._live(head)

    def _delete_if(self, key: dict[str, Any], condition: str, values: dict[str, Any]) -> bool:
        """Delete one item if ``condition`` holds; whether it did."""
        return self._write_if("delete_item", key, condition, values)

    def _update_if(self, key: dict[str, Any], update: str, condition: str, values: dict[str, Any]) -> bool:
        """Update one item if ``condition`` holds; whether it did."""
        return self._write_if("update_item", key, condition, values, UpdateExpression=update)

    def _write_if(
        self, call: str, key: dict[str, Any], condition: str, values: dict[str, Any], **request: Any
    ) -> bool:
        try:
            self._call(
                "dynamodb",
                call,
                passthrough={"ConditionalCheckFailedException"},
                TableName=self._table,
                Key=key,
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
                **request,
            )
        except ClientError:
            return False
        return True

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

    def _live(self, item: dict[str, Any]) -> bool:
        """False for an item past its TTL that DynamoDB's lagging sweep has not removed yet."""
        expires = item.get("expires_at", {}).get("N")
        return expires is None or float(expires) >= self._clock()
