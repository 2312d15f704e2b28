"""Appending to a transcript: one transaction per batch (chunk, head, index), compaction into a
new snapshot when the tail grows past its limits, and garbage collection of what it replaced."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from ._errors import StaleHeadError, StorageError
from ._logging import get_logger
from ._snapshot_padding import PADDING_BYTES, PADDING_KEY, padding_body
from ._transcript_format import (
    CODEC_ZSTD,
    Batch,
    Location,
    chunk_sk,
    compress_chunk,
    compress_snapshot,
    jsonl_of,
    jsonl_size,
)
from ._transcript_items import (
    DAY_S,
    MIN_COPY_PART_BYTES,
    S3_EXPIRY_MARGIN_DAYS,
    _content_type,
    _Head,
    _head_item,
    _HeadConflict,
    _snapshot_key,
    _SnapshotMissing,
    _State,
    _storage_error,
    _TransactionConflict,
    encode_snapshot_ref,
    snapshot_ref,
    with_frame_mark,
)
from ._transcript_load import Loading

_log = get_logger("session_core._transcript_store")

# What the head says of a transaction that failed or whose replies were lost.
_Outcome = Literal["landed", "not seen", "unknown"]


@dataclass(frozen=True)
class _Placed:
    """A new snapshot object as a compaction wrote it (what its head records)."""

    key: str
    codec: str
    size: int
    start: int  # where its first frame starts (after the padding)
    frames: tuple[int, ...]  # where its later frames start
    frames_raw: tuple[int, ...]  # where their JSONL starts in the transcript
    body: bytes | None = None  # the whole object, while small enough to re-upload


class Appending(Loading):
    def _append_locked(self, location: Location, batch: Batch) -> None:
        with self._key_lock(location):
            state = self._cached(location)
            tried: set[str] = set()
            expected = 0
            for attempt in range(self._max_conflict_retries + 1):
                # A fresh token per attempt: DynamoDB rejects a reused ClientRequestToken whose
                # transaction differs, and the head's ``tx`` tells us which attempt landed.
                token = uuid.uuid4().hex
                tried.add(token)
                try:
                    new_state = self._commit(location, state, batch, token)
                except _HeadConflict:
                    expected = state.head.version if state else 0
                    state = self._refresh(location, state)
                    if state is None:
                        self._forget(location)
                        continue
                    self._remember(location, state)
                    if state.head.tx in tried:
                        return  # our transaction landed although its response was lost
                    continue
                except _TransactionConflict:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                if new_state is not None:
                    self._remember(location, new_state)
                return
            raise StaleHeadError(location.describe(), expected)

    def _commit(self, location: Location, state: _State | None, batch: Batch, token: str) -> _State | None:
        """Write the batch's new entries on top of ``state``; returns the state after it."""
        known = self._uuids(location, state) if state else set()
        seen: set[str] = set()
        keep: list[int] = []
        for i, uid in enumerate(batch.uuids):
            if uid is not None:
                if uid in known or uid in seen:
                    continue  # uuid is the SDK's idempotency key (e.g. import replays)
                seen.add(uid)
            keep.append(i)
        if not keep:
            return None
        lines = [batch.lines[i] for i in keep]
        now = self._clock()
        mtime_ms = self._next_mtime_ms(now)
        summary = self._fold(location, state, [batch.entries[i] for i in keep], mtime_ms)
        chunk = compress_chunk(lines)
        old = state.head if state else None
        if self._needs_snapshot(old, len(chunk), now):
            return self._commit_snapshot(location, state, lines, known | seen, summary, mtime_ms, now, token)
        assert old is None or old.next_seq >= old.snap_seq
        seq = old.next_seq if old else 0
        head = _Head(
            version=(old.version if old else 0) + 1,
            epoch=old.epoch if old else uuid.uuid4().hex,
            next_seq=seq + 1,
            snap_key=old.snap_key if old else None,
            snap_seq=old.snap_seq if old else 0,
            snap_count=old.snap_count if old else 0,
            snap_size=old.snap_size if old else 0,
            snap_at=old.snap_at if old else now,
            tail_bytes=(old.tail_bytes if old else 0) + len(chunk),
            tail_at=old.tail_at if old and old.tail_at is not None else now,
            tx=token,
            summary=summary,
            snap_codec=old.snap_codec if old else CODEC_ZSTD,
            snap_raw_size=old.snap_raw_size if old else None,
            snap_start=old.snap_start if old else 0,
            snap_frames=old.snap_frames if old else (),
            snap_frames_raw=old.snap_frames_raw if old else (),
        )
        chunk_item = {
            "pk": {"S": location.pk},
            "sk": {"S": chunk_sk(seq)},
            "epoch": {"S": head.epoch},
            "n": {"N": str(len(lines))},
            "data": {"B": chunk},
            "codec": {"S": CODEC_ZSTD},
            # Outlives the head: a chunk can be refresh_after_days old when the head is rewritten,
            # and the head is read up to a day past its TTL for a message sent before it (see
            # _read_as_of): kept as long as the bucket keeps objects, as a snapshot is.
            "expires_at": {"N": str(int(now + self._retention_s + self._chunk_margin_s()))},
        }
        tail = [*(state.tail if state else []), *lines]
        try:
            self._transact(
                location,
                old,
                [{"Put": {"TableName": self._table, "Item": chunk_item}}],
                head,
                mtime_ms,
                now,
                jsonl_size(state.snap if state else (), tail),
            )
        except StorageError:
            # Every reply lost: if it landed, an error would make the SDK send the batch again
            # and its entries without a uuid would be stored twice.
            if self._transaction_outcome(location, token) != "landed":
                raise
        return _State(
            head=head,
            snap=state.snap if state else (),
            tail=tail,
            uuids=known | seen,
            garbage=dict(state.garbage) if state else {},
            snap_body=state.snap_body if state else None,
        )

    def _chunk_margin_s(self) -> float:
        return max(self._refresh_after_s, S3_EXPIRY_MARGIN_DAYS * DAY_S)

    def _needs_snapshot(self, old: _Head | None, chunk_size: int, now: float) -> bool:
        if chunk_size > self._chunk_limit:
            return True  # too big for an item: spill into a snapshot right away
        if old is None:
            return False
        if old.tail_bytes + chunk_size > self._tail_limit:
            return True
        if old.next_seq - old.snap_seq + 1 > self._max_tail_chunks:
            return True
        if old.snap_key is not None and now - old.snap_at > self._refresh_after_s:
            return True
        return old.tail_at is not None and now - old.tail_at > self._refresh_after_s

    def _commit_snapshot(
        self,
        location: Location,
        state: _State | None,
        lines: list[bytes],
        uuids: set[str],
        summary: str | None,
        mtime_ms: int,
        now: float,
        token: str,
    ) -> _State:
        """Compaction: a new snapshot = the old one + one more frame of the newer entries."""
        old = state.head if state else None
        snap = state.snap if state else ()
        newer = jsonl_of([*(state.tail if state else []), *lines])
        seq = old.next_seq if old else 0
        epoch = old.epoch if old else uuid.uuid4().hex
        placed = None
        if old is not None and old.snap_key is not None and old.snap_size >= MIN_COPY_PART_BYTES:
            key = _snapshot_key(location, epoch, seq, token, old.snap_codec)
            placed = self._extend_snapshot(key, old, newer)
        if placed is None:
            key = _snapshot_key(location, epoch, seq, token, CODEC_ZSTD)
            placed = self._write_snapshot(key, state, newer)
        snap = (*snap, newer)
        snap_count = (old.snap_count if old else 0) + newer.count(b"\n")
        head = _Head(
            version=(old.version if old else 0) + 1,
            epoch=epoch,
            next_seq=seq + 1,
            snap_key=placed.key,
            snap_seq=seq + 1,
            snap_count=snap_count,
            snap_size=placed.size,
            snap_at=now,
            tail_bytes=0,
            tail_at=None,
            tx=token,
            summary=summary,
            snap_codec=placed.codec,
            snap_raw_size=sum(len(part) for part in snap),
            snap_start=placed.start,
            snap_frames=placed.frames,
            snap_frames_raw=placed.frames_raw,
        )
        try:
            self._transact(location, old, [], head, mtime_ms, now, jsonl_size(snap, []))
        except (_HeadConflict, _TransactionConflict, StorageError):
            outcome = self._transaction_outcome(location, token, placed.key)
            if outcome == "not seen":
                self._best_effort_delete_objects([placed.key])  # an orphan otherwise; never read
            if outcome != "landed":
                raise
            # Landed although no reply said so: carry on as committed (the SDK would otherwise
            # send the batch again). If another writer has moved on since, the head we remember
            # is stale and the next append catches up as after any conflict.
        garbage = dict(state.garbage) if state else {}
        if old is not None:
            garbage.update((chunk_sk(s), old.epoch) for s in range(old.snap_seq, old.next_seq))
        new_state = _State(
            head=head,
            snap=snap,
            tail=[],
            uuids=uuids,
            garbage=garbage,
            snap_body=placed.body,
        )
        self._collect_garbage(location, new_state, old.snap_key if old else None, now)
        return new_state

    def _extend_snapshot(self, key: str, old: _Head, newer: bytes) -> _Placed | None:
        """The old snapshot (at least 5 MiB) copied inside S3 as part 1 and one frame of
        ``newer`` uploaded as part 2. None if the old one vanished.

        Once its frames alone fill a part, the padding is left behind: part 1 is then the copy
        of the frames only, so a long session stops storing (and an emulator stops reading on
        every range GET) 5 MiB that hold nothing."""
        assert old.snap_key is not None
        codec = old.snap_codec  # frames of one codec only: an old gzip snapshot stays gzip
        member = compress_snapshot([newer], codec)
        skip = old.snap_start if old.snap_size - old.snap_start >= MIN_COPY_PART_BYTES else 0
        try:
            span = (skip, old.snap_size) if skip else None
            self._compose_snapshot(key, old.snap_key, member, span=span)
        except _SnapshotMissing:
            return None
        frames: tuple[int, ...] = ()
        raws: tuple[int, ...] = ()
        if codec == CODEC_ZSTD and old.snap_raw_size is not None:
            kept = tuple(mark - skip for mark in old.snap_frames)
            frames, raws = with_frame_mark(kept, old.snap_frames_raw, old.snap_size - skip, old.snap_raw_size)
        return _Placed(key, codec, old.snap_size - skip + len(member), old.snap_start - skip, frames, raws)

    def _write_snapshot(self, key: str, state: _State | None, newer: bytes) -> _Placed:
        """A snapshot made anew: the padding copied inside S3, then the older entries (only
        when the old snapshot predates the padding, or vanished) and one frame of ``newer``."""
        old = state.head if state else None
        prefix = b""
        marks: tuple[int, ...] = ()
        raws: tuple[int, ...] = ()
        if state is not None and old is not None and old.snap_count:
            if state.snap_body and old.snap_codec == CODEC_ZSTD:
                prefix, marks, raws = state.snap_body, old.snap_frames, old.snap_frames_raw
            else:
                prefix = compress_snapshot(state.snap)
        body = prefix + compress_snapshot([newer])
        prefix_raw = sum(len(part) for part in state.snap) if state is not None else 0
        marks, raws = with_frame_mark(marks, raws, len(prefix), prefix_raw)
        if self._compose_after_padding(key, body):
            padded = tuple(PADDING_BYTES + mark for mark in marks)
            return _Placed(key, CODEC_ZSTD, PADDING_BYTES + len(body), PADDING_BYTES, padded, raws)
        # No padding to be had: the object written whole, as before there was one.
        self._put_object(key, body)
        kept = body if len(body) < MIN_COPY_PART_BYTES else None  # re-uploaded by the next one
        return _Placed(key, CODEC_ZSTD, len(body), 0, marks, raws, kept)

    def _compose_after_padding(self, key: str, body: bytes) -> bool:
        """Write ``key`` as the padding + ``body``; puts the padding first if it is missing (a
        new bucket, or the lifecycle rule expired it). False if it is missing even then."""
        if self._try_compose_after_padding(key, body):
            return True
        self._put_object(PADDING_KEY, padding_body())
        return self._try_compose_after_padding(key, body)

    def _try_compose_after_padding(self, key: str, body: bytes) -> bool:
        try:
            # S3 answers AccessDenied, not NoSuchKey, for a missing key to a role that may not
            # list where it is: either way the padding counts as missing.
            self._compose_snapshot(key, PADDING_KEY, body, missing=frozenset({"AccessDenied"}))
        except _SnapshotMissing:
            return False
        return True

    def _put_object(self, key: str, body: bytes) -> None:
        content_type = _content_type(key)
        self._call("s3", "put_object", Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)

    def _transaction_outcome(self, location: Location, token: str, snap_key: str | None = None) -> _Outcome:
        """After a failed transaction: whether the head shows that it landed. A lost reply can
        hide a transaction that landed: the head then carries its token or, once another writer
        has appended on top of it, still names its new snapshot (which must stay). "unknown"
        when the head cannot be read: keep the snapshot (a true orphan is collected later)."""
        try:
            head = self._query_head(location)
        except StorageError:
            return "unknown"
        if head is not None and (head.tx == token or (snap_key is not None and head.snap_key == snap_key)):
            return "landed"
        return "not seen"

    def _compose_snapshot(
        self,
        key: str,
        source: str,
        member: bytes,
        missing: frozenset[str] = frozenset(),
        span: tuple[int, int] | None = None,
    ) -> None:
        """``key`` = ``source`` (its bytes ``span``, or all) copied inside S3 + ``member``;
        ``_SnapshotMissing`` if S3 says the source is not there (NoSuchKey, or a code in
        ``missing``)."""
        copy_range = {"CopySourceRange": f"bytes={span[0]}-{span[1] - 1}"} if span else {}
        upload = self._call(
            "s3", "create_multipart_upload", Bucket=self._bucket, Key=key, ContentType=_content_type(key)
        )["UploadId"]
        target = {"Bucket": self._bucket, "Key": key, "UploadId": upload}
        try:
            try:
                copied = self._call(
                    "s3",
                    "upload_part_copy",
                    passthrough={"NoSuchKey", "404", *missing},
                    PartNumber=1,
                    CopySource={"Bucket": self._bucket, "Key": source},
                    **copy_range,
                    **target,
                )
            except ClientError as exc:
                raise _SnapshotMissing(source) from exc
            sent = self._call("s3", "upload_part", PartNumber=2, Body=member, **target)
            parts = [
                {"PartNumber": 1, "ETag": copied["CopyPartResult"]["ETag"]},
                {"PartNumber": 2, "ETag": sent["ETag"]},
            ]
            self._call("s3", "complete_multipart_upload", MultipartUpload={"Parts": parts}, **target)
        except BaseException:
            with contextlib.suppress(StorageError):  # the lifecycle rule aborts leftovers after a day
                self._call("s3", "abort_multipart_upload", **target)
            raise

    def _transact(
        self,
        location: Location,
        old: _Head | None,
        extra: list[dict[str, Any]],
        head: _Head,
        mtime_ms: int,
        now: float,
        size: int,
    ) -> None:
        """Write ``extra`` with the new head and update the session's index item; ``size`` is
        the transcript's JSONL size after the write."""
        expires = {"N": str(int(now + self._retention_s))}
        if old is None:
            # A head past its TTL that DynamoDB has not swept yet counts as absent.
            condition = "attribute_not_exists(pk) OR expires_at < :now"
            values: dict[str, Any] | None = {":now": {"N": str(int(now))}}
        else:
            condition = "v = :expected_version AND epoch = :expected_epoch"
            values = {
                ":expected_version": {"N": str(old.version)},
                ":expected_epoch": {"S": old.epoch},
            }
        put_head: dict[str, Any] = {
            "TableName": self._table,
            "Item": _head_item(location, head, expires),
            "ConditionExpression": condition,
        }
        if values:
            put_head["ExpressionAttributeValues"] = values
        # Every write counts itself in ``writes``: a delete changes the item only while the
        # count is the one it read, so it never undoes an append that came after its look.
        index_values: dict[str, Any] = {
            ":sid": {"S": location.session_id},
            ":pkey": {"S": location.project_key},
            ":exp": expires,
            ":one": {"N": "1"},
        }
        if location.subpath is None:
            update = (
                "SET session_id = :sid, project_key = :pkey, expires_at = :exp, "
                "main_mtime = :mtime, has_main = :yes, main_size = :size"
            )
            index_values[":mtime"] = {"N": str(mtime_ms)}
            # A restore with a size limit reads this before the Query: past it, no download starts.
            index_values[":size"] = {"N": str(size)}
            index_values[":yes"] = {"BOOL": True}
            if head.summary is not None:
                update += ", summary = :summary"
                index_values[":summary"] = {"S": head.summary}
            snapshot = snapshot_ref(head) if old is None or old.snap_key != head.snap_key else None
            if snapshot is not None:
                # Names the new snapshot beside the subpaths, so a restore (which reads this
                # item anyway) starts downloading it while its Query is still running.
                update += ", main_snap = :snap"
                index_values[":snap"] = {"S": encode_snapshot_ref(snapshot)}
            update += " ADD writes :one"
        else:
            update = (
                "SET session_id = :sid, project_key = :pkey, expires_at = :exp ADD subpaths :sub, writes :one"
            )
            index_values[":sub"] = {"SS": [location.subpath]}
        items = [
            *extra,
            {"Put": put_head},
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {"pk": {"S": location.index_pk}, "sk": {"S": location.index_sk}},
                    "UpdateExpression": update,
                    "ExpressionAttributeValues": index_values,
                }
            },
        ]
        try:
            self._call(
                "dynamodb",
                "transact_write_items",
                passthrough={"TransactionCanceledException"},
                TransactItems=items,
                ClientRequestToken=head.tx,
            )
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" in reasons:
                raise _HeadConflict from exc
            if "TransactionConflict" in reasons:
                raise _TransactionConflict from exc
            raise _storage_error("dynamodb.TransactWriteItems", exc) from exc

    def _fold(
        self,
        location: Location,
        state: _State | None,
        entries: list[Mapping[str, Any]],
        mtime_ms: int,
    ) -> str | None:
        """The main transcript's summary after these entries, as JSON (subpaths have none)."""
        if location.subpath is not None or self._fold_summary is None:
            return None
        prev = None
        if state is not None and state.head.summary is not None:
            prev = {
                "session_id": location.session_id,
                "mtime": mtime_ms,
                "data": json.loads(state.head.summary),
            }
        folded = self._fold_summary(prev, location.sdk_key(), [dict(e) for e in entries])
        return json.dumps(folded["data"], separators=(",", ":"))

    def _collect_garbage(
        self, location: Location, state: _State, replaced_snapshot: str | None, now: float
    ) -> None:
        """Delete replaced chunks/snapshots and old orphans; failures are left to TTL/lifecycle."""
        if state.garbage:
            try:
                self._delete_chunks(location.pk, state.garbage)
                state.garbage.clear()
            except StorageError as exc:
                _log.warning("transcript_gc_failed", key=location.describe(), error=str(exc))
        doomed = [replaced_snapshot] if replaced_snapshot else []
        try:
            for obj in self._list_objects(location.s3_prefix):
                key = obj["Key"]
                if key in (state.head.snap_key, replaced_snapshot):
                    continue
                if now - obj["LastModified"].timestamp() >= self._orphan_grace_s:
                    doomed.append(key)  # a snapshot no head took (crash between upload and move)
        except StorageError as exc:
            _log.warning("transcript_gc_failed", key=location.describe(), error=str(exc))
        self._best_effort_delete_objects(doomed)
