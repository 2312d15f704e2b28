"""The Claude Agent SDK's ``SessionStore`` on DynamoDB + S3, without importing the SDK.

Layout (one table with ``pk``/``sk`` strings and TTL attribute ``expires_at``, one bucket):

* ``pk = tx|<project>|<session>|<subpath or ~>`` is one transcript's partition:
  ``sk = head`` holds the head (version, epoch, next append number, which snapshot holds
  the older entries, summary), ``sk = c#<seq>`` holds one append batch as zlib-compressed
  JSON lines. Chunk keys sort before ``head``, so ONE Query returns head and tail.
* ``pk = proj|<project>, sk = <session>`` indexes the project's sessions: original ids,
  ``main_mtime`` (epoch ms, the same write stamps the summary), the subpath set and the
  SDK's folded summary. ``list_sessions``/``list_subkeys``/``list_session_summaries``
  read only these items.
* ``transcripts/<project>/<session>/<subpath or ~>/snap-<seq>-<token>.jsonl.gz`` is a
  gzip JSONL snapshot of every entry before append number ``snap_seq``.

An append is one TransactWriteItems: put the chunk, put the head (condition: the version
and epoch we read), update the index item. A conflict re-reads the head (one Query) and
tries again. When the tail grows past its limits (bytes, chunk count, age) or one batch
is too big for an item, the append compacts instead: the new snapshot is the old one plus
one gzip member holding the newer entries (gzip readers decode concatenated members as
one stream). Above S3's 5 MiB part minimum the old snapshot is copied inside S3 as part 1
of a multipart upload, so only the new member crosses the wire; below it the store
re-uploads the small old snapshot it holds. The head moves onto the new snapshot in the
same kind of transaction; the replaced chunks and snapshot are deleted afterwards (best
effort; loaders ignore them, TTL and lifecycle remove what a crash leaves). A snapshot
that never made it into a head is an orphan: never read, deleted by a later compaction
once it is older than ``orphan_grace_s``.

A cold load is one Query (+ one GET when a snapshot exists). Each store keeps the entries
it has seen per transcript; a load whose cache is current costs one Query of the head and
reads nothing from S3; new chunks come with that same Query.

Entries' ``uuid`` is an idempotency key (the SDK's ``import_session_to_store`` replays
whole transcripts): an entry whose uuid is already stored is skipped at append time.

Retention: the head and index items carry ``expires_at`` = now + ``retention_days``,
refreshed by every write; chunks get ``refresh_after_days`` (4) more; the bucket expires
objects ``retention_days + 5`` days after creation. A write that finds the snapshot or the
oldest tail chunk older than ``refresh_after_days`` compacts, so no part of a transcript
expires before its head does. A head past ``expires_at`` reads as absent even before
DynamoDB's lagging TTL sweep removes it.
A subagent transcript not written for ``retention_days`` expires on its own; its subpath
stays listed until the session is deleted and ``load`` then returns ``None`` for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from ._aws_errors import aws_error_code, storage_error
from ._errors import ConfigError, CorruptTranscriptError, StaleHeadError, StorageError
from ._logging import get_logger
from ._transcript_format import (
    CHUNK_SK_PREFIX,
    HEAD_SK,
    Batch,
    Location,
    chunk_sk,
    compress_chunk,
    compress_snapshot,
    decode_lines,
    decompress_chunk,
    decompress_snapshot,
    encode_batch,
    locate,
    project_index_pk,
    uuid_of,
)

__all__ = ["SessionListing", "SessionSummary", "TranscriptStore"]

_log = get_logger(__name__)

DAY_S = 86400.0
# DynamoDB items are at most 400 KB and one Query page 1 MB: a chunk stays well under the
# first, head + tail well under the second, so one request returns them all.
DEFAULT_CHUNK_LIMIT_BYTES = 300_000
DEFAULT_TAIL_LIMIT_BYTES = 600_000
DEFAULT_MAX_TAIL_CHUNKS = 200
# S3 expires objects retention + 5 days after creation while items live retention days
# after their last write; rewriting a snapshot (and old chunks) that is older than 4 days
# whenever the transcript is written keeps every part of a live session alive.
DEFAULT_REFRESH_AFTER_DAYS = 4.0
# A snapshot that no head names may still be in flight for a concurrent writer.
DEFAULT_ORPHAN_GRACE_S = 3600.0
DEFAULT_CACHE_LIMIT_BYTES = 256 * 1024 * 1024
# S3's smallest non-final multipart part: bigger snapshots are extended by server-side copy.
MIN_COPY_PART_BYTES = 5 * 1024 * 1024

_PERMANENT_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidAccessKeyId",
        "NoSuchBucket",
        "ResourceNotFoundException",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "ValidationException",
    }
)


class SessionListing(TypedDict):
    """One row of ``list_sessions`` (the SDK's ``SessionStoreListEntry``)."""

    session_id: str
    mtime: int


class SessionSummary(TypedDict):
    """One row of ``list_session_summaries`` (the SDK's ``SessionSummaryEntry``)."""

    session_id: str
    mtime: int
    data: dict[str, Any]


FoldSummary = Callable[[Any, Any, Any], Any]


class _HeadConflict(Exception):
    """The head moved since we read it (another writer, or our own lost-response retry)."""


class _TransactionConflict(Exception):
    """DynamoDB refused the transaction because another one touched the same item."""


class _SnapshotMissing(Exception):
    pass


class _Head(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    epoch: str
    next_seq: int
    snap_key: str | None
    snap_seq: int
    snap_count: int
    snap_size: int
    snap_at: float
    tail_bytes: int
    tail_at: float | None
    tx: str
    summary: str | None


@dataclass
class _State:
    """All a store knows of one transcript at ``head.version``: its entries as JSON lines."""

    head: _Head
    lines: list[bytes]
    uuids: set[str]
    garbage: set[str] = field(default_factory=set)  # chunk sort keys no head needs any more
    snap_body: bytes | None = None  # the snapshot object while small enough to re-upload whole

    @property
    def nbytes(self) -> int:
        return sum(len(line) for line in self.lines) + 64 * len(self.lines) + len(self.snap_body or b"")


class TranscriptStore:
    """Transcript mirror for the Claude Agent SDK (``ClaudeAgentOptions(session_store=...)``).

    Satisfies ``claude_agent_sdk.types.SessionStore`` by shape: ``append``, ``load``,
    ``list_sessions``, ``list_session_summaries`` (needs ``fold_summary``), ``delete``
    and ``list_subkeys``. Create one per process; its per-transcript cache is what makes
    warm loads free of S3 reads. boto3 calls run in worker threads.

    Errors: ``InvalidSessionKeyError`` / ``InvalidTranscriptEntryError`` for bad input,
    ``StorageError`` (``retryable`` unless the code says otherwise, raised ``from`` the
    provider error) for S3/DynamoDB failures, ``CorruptTranscriptError`` naming the item
    or object that cannot be read back, ``StaleHeadError`` when concurrent writers keep
    moving the head. Nothing stored is modified when any of them is raised.
    """

    def __init__(
        self,
        *,
        s3: Any,
        dynamodb: Any,
        bucket: str,
        table: str,
        fold_summary: FoldSummary | None = None,
        retention_days: int = 25,
        chunk_limit_bytes: int = DEFAULT_CHUNK_LIMIT_BYTES,
        tail_limit_bytes: int = DEFAULT_TAIL_LIMIT_BYTES,
        max_tail_chunks: int = DEFAULT_MAX_TAIL_CHUNKS,
        refresh_after_days: float = DEFAULT_REFRESH_AFTER_DAYS,
        orphan_grace_s: float = DEFAULT_ORPHAN_GRACE_S,
        max_conflict_retries: int = 5,
        cache_limit_bytes: int = DEFAULT_CACHE_LIMIT_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not bucket:
            raise ConfigError("bucket", "the transcript bucket name is empty (SESSIONS_BUCKET)")
        if not table:
            raise ConfigError("table", "the transcript table name is empty (SESSIONS_TABLE)")
        if retention_days < 1:
            raise ConfigError("retention_days", f"must be >= 1, got {retention_days}")
        if not 0 < chunk_limit_bytes <= tail_limit_bytes <= 900_000:
            raise ConfigError("chunk_limit_bytes", "need 0 < chunk_limit <= tail_limit <= 900000")
        self._s3 = s3
        self._dynamodb = dynamodb
        self._bucket = bucket
        self._table = table
        self._fold_summary = fold_summary
        self._retention_s = retention_days * DAY_S
        self._chunk_limit = chunk_limit_bytes
        self._tail_limit = tail_limit_bytes
        self._max_tail_chunks = max_tail_chunks
        self._refresh_after_s = refresh_after_days * DAY_S
        self._orphan_grace_s = orphan_grace_s
        self._max_conflict_retries = max_conflict_retries
        self._cache_limit = cache_limit_bytes
        self._clock = clock
        self.requests: Counter[tuple[str, str]] = Counter()
        """Storage requests this store made, by (service, operation), e.g. ("s3", "GetObject")."""
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._cache: OrderedDict[str, _State] = OrderedDict()
        self._cache_bytes = 0
        self._last_mtime_ms = 0

    # --- the SessionStore protocol -------------------------------------------------------

    async def append(self, key: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> None:
        """Persist a batch after the ones already stored; entries with a known ``uuid`` are skipped.

        One DynamoDB transaction in the common case; a compaction adds one S3 upload.
        """
        location = locate(key)
        batch = encode_batch(entries)
        if not batch.lines:
            return
        await asyncio.to_thread(self._append_locked, location, batch)

    async def load(self, key: Mapping[str, Any]) -> list[Any] | None:
        """Every entry appended under ``key``, in order; ``None`` if it was never written."""
        location = locate(key)
        return await asyncio.to_thread(self._load_locked, location)

    async def list_sessions(self, project_key: str) -> list[SessionListing]:
        """Sessions of ``project_key`` that have a main transcript, with mtime in epoch ms."""
        pk = project_index_pk(project_key)
        items = await asyncio.to_thread(self._query_index, pk, "session_id, main_mtime, has_main, expires_at")
        return [
            SessionListing(session_id=item["session_id"]["S"], mtime=int(item["main_mtime"]["N"]))
            for item in items
            if item.get("has_main", {}).get("BOOL") and self._live(item)
        ]

    async def list_session_summaries(self, project_key: str) -> list[SessionSummary]:
        """The SDK's folded summaries of the project's sessions (needs ``fold_summary``)."""
        if self._fold_summary is None:
            # The SDK treats this as "not implemented" and falls back to list_sessions + load.
            raise NotImplementedError("TranscriptStore was created without fold_summary")
        pk = project_index_pk(project_key)
        items = await asyncio.to_thread(
            self._query_index, pk, "session_id, main_mtime, has_main, summary, expires_at"
        )
        out: list[SessionSummary] = []
        for item in items:
            if not item.get("has_main", {}).get("BOOL") or "summary" not in item or not self._live(item):
                continue
            try:
                data = json.loads(item["summary"]["S"])
            except (ValueError, RecursionError) as exc:
                location = f"dynamodb://{self._table}/{pk}/{item.get('sk', {}).get('S')}"
                raise CorruptTranscriptError(location, f"summary is not JSON: {exc}") from exc
            out.append(
                SessionSummary(
                    session_id=item["session_id"]["S"],
                    mtime=int(item["main_mtime"]["N"]),
                    data=data,
                )
            )
        return out

    async def delete(self, key: Mapping[str, Any]) -> None:
        """Delete a transcript; a main key (no ``subpath``) takes all its subpaths with it."""
        location = locate(key)
        await asyncio.to_thread(self._delete_locked, location)

    async def list_subkeys(self, key: Mapping[str, Any]) -> list[str]:
        """Subpaths (e.g. ``subagents/agent-1``) written under the session, sorted."""
        location = locate(key, allow_subpath=False)
        item = await asyncio.to_thread(self._get_index_item, location)
        if item is None or not self._live(item):
            return []
        return sorted(item.get("subpaths", {}).get("SS", []))

    # --- append --------------------------------------------------------------------------

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
                    state, _ = self._refresh(location, state)
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
        known = state.uuids if state else set()
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
            return self._commit_snapshot(location, state, lines, seen, summary, mtime_ms, now, token)
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
        )
        chunk_item = {
            "pk": {"S": location.pk},
            "sk": {"S": chunk_sk(seq)},
            "epoch": {"S": head.epoch},
            "n": {"N": str(len(lines))},
            "data": {"B": chunk},
            # Outlives the head: a chunk can be refresh_after_days old when the head is rewritten.
            "expires_at": {"N": str(int(now + self._retention_s + self._refresh_after_s))},
        }
        self._transact(
            location,
            old,
            [{"Put": {"TableName": self._table, "Item": chunk_item}}],
            head,
            mtime_ms,
            now,
        )
        return _State(
            head=head,
            lines=[*(state.lines if state else []), *lines],
            uuids=known | seen,
            garbage=set(state.garbage) if state else set(),
            snap_body=state.snap_body if state else None,
        )

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
        new_uuids: set[str],
        summary: str | None,
        mtime_ms: int,
        now: float,
        token: str,
    ) -> _State:
        """Compaction: a new snapshot = the old one + one gzip member of the newer entries.

        Above 5 MiB the old snapshot is copied server-side into part 1 of a multipart upload
        and only the new member is sent, so a compaction writes what is new, not the history.
        """
        old = state.head if state else None
        all_lines = [*(state.lines if state else []), *lines]
        snap_count = old.snap_count if old else 0
        member = compress_snapshot(all_lines[snap_count:])
        seq = old.next_seq if old else 0
        snap_key = f"{location.s3_prefix}snap-{seq + 1:012d}-{token}.jsonl.gz"
        body: bytes | None = None
        if old is not None and old.snap_key is not None and old.snap_size >= MIN_COPY_PART_BYTES:
            try:
                self._compose_snapshot(snap_key, old.snap_key, member)
                size = old.snap_size + len(member)
            except _SnapshotMissing:
                # The old snapshot vanished: rebuild it from what this process holds.
                body = compress_snapshot(all_lines)
        else:
            prefix = b""
            if state is not None and snap_count:
                prefix = (
                    state.snap_body
                    if state.snap_body is not None
                    else compress_snapshot(state.lines[:snap_count])
                )
            body = prefix + member
        if body is not None:
            self._call(
                "s3",
                "put_object",
                Bucket=self._bucket,
                Key=snap_key,
                Body=body,
                ContentType="application/gzip",
            )
            size = len(body)
        head = _Head(
            version=(old.version if old else 0) + 1,
            epoch=old.epoch if old else uuid.uuid4().hex,
            next_seq=seq + 1,
            snap_key=snap_key,
            snap_seq=seq + 1,
            snap_count=len(all_lines),
            snap_size=size,
            snap_at=now,
            tail_bytes=0,
            tail_at=None,
            tx=token,
            summary=summary,
        )
        try:
            self._transact(location, old, [], head, mtime_ms, now)
        except (_HeadConflict, _TransactionConflict, StorageError):
            self._best_effort_delete_objects([snap_key])  # an orphan otherwise; never read
            raise
        garbage = set(state.garbage) if state else set()
        if old is not None:
            garbage.update(chunk_sk(s) for s in range(old.snap_seq, old.next_seq))
        new_state = _State(
            head=head,
            lines=all_lines,
            uuids=(state.uuids if state else set()) | new_uuids,
            garbage=garbage,
            snap_body=body if body is not None and len(body) < MIN_COPY_PART_BYTES else None,
        )
        self._collect_garbage(location, new_state, old.snap_key if old else None, now)
        return new_state

    def _compose_snapshot(self, key: str, source: str, member: bytes) -> None:
        upload = self._call(
            "s3", "create_multipart_upload", Bucket=self._bucket, Key=key, ContentType="application/gzip"
        )["UploadId"]
        target = {"Bucket": self._bucket, "Key": key, "UploadId": upload}
        try:
            try:
                copied = self._call(
                    "s3",
                    "upload_part_copy",
                    passthrough={"NoSuchKey", "404"},
                    PartNumber=1,
                    CopySource={"Bucket": self._bucket, "Key": source},
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
    ) -> None:
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
        index_values: dict[str, Any] = {
            ":sid": {"S": location.session_id},
            ":pkey": {"S": location.project_key},
            ":exp": expires,
        }
        if location.subpath is None:
            update = (
                "SET session_id = :sid, project_key = :pkey, expires_at = :exp, "
                "main_mtime = :mtime, has_main = :yes"
            )
            index_values[":mtime"] = {"N": str(mtime_ms)}
            index_values[":yes"] = {"BOOL": True}
            if head.summary is not None:
                update += ", summary = :summary"
                index_values[":summary"] = {"S": head.summary}
        else:
            update = "SET session_id = :sid, project_key = :pkey, expires_at = :exp ADD subpaths :sub"
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
                self._delete_items(location.pk, sorted(state.garbage))
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

    # --- load ----------------------------------------------------------------------------

    def _load_locked(self, location: Location) -> list[Any] | None:
        with self._key_lock(location):
            state, entries = self._refresh(location, self._cached(location))
            if state is None:
                self._forget(location)
                return None
            self._remember(location, state)
            if entries is None:  # fresh dicts every time: callers may mutate what they get
                entries = decode_lines(state.lines, self._head_location(location))
            return entries

    def _refresh(self, location: Location, cached: _State | None) -> tuple[_State | None, list[Any] | None]:
        """Bring ``cached`` up to the stored head (cold: Query + GET; warm: one Query).

        Also returns the decoded entries when it had to decode all of them anyway.
        """
        for _ in range(3):
            try:
                if cached is None:
                    return self._read_state(location, self._query(location.pk))
                return self._catch_up(location, cached)
            except _SnapshotMissing as missing:
                # A concurrent compaction may have replaced it between our Query and GET.
                head = self._read_head(location, self._query(location.pk, start=HEAD_SK))
                if head is None:
                    return None, None
                if head.snap_key == missing.args[0]:
                    raise CorruptTranscriptError(
                        f"s3://{self._bucket}/{missing.args[0]}",
                        "snapshot object is missing (the head names it; nothing else was changed)",
                    ) from None
                cached = None
        raise StaleHeadError(location.describe(), cached.head.version if cached else 0)

    def _catch_up(self, location: Location, cached: _State) -> tuple[_State | None, list[Any] | None]:
        items = self._query(location.pk, start=chunk_sk(cached.head.next_seq))
        head = self._read_head(location, items)
        if head is None:
            return None, None
        if head.epoch != cached.head.epoch:  # deleted and written anew elsewhere
            return self._read_state(location, self._query(location.pk))
        if head.version == cached.head.version:
            return cached, None
        chunks = self._chunk_items(location, head, items)
        if head.snap_seq > cached.head.next_seq:
            # Another writer compacted entries we never saw: the snapshot has them.
            return self._assemble(location, head, chunks, garbage=set(cached.garbage))
        snap_body = cached.snap_body if head.snap_key == cached.head.snap_key else None
        new_lines = self._chunk_lines(location, head, chunks, cached.head.next_seq)
        new_entries = decode_lines(new_lines, self._head_location(location))
        state = _State(
            head=head,
            lines=[*cached.lines, *new_lines],
            uuids=cached.uuids | _uuids_of(new_entries),
            garbage=set(cached.garbage),
            snap_body=snap_body,
        )
        return state, None

    def _read_state(
        self, location: Location, items: list[dict[str, Any]]
    ) -> tuple[_State | None, list[Any] | None]:
        head = self._read_head(location, items)
        if head is None:
            return None, None
        chunks = self._chunk_items(location, head, items)
        garbage = {
            item["sk"]["S"]
            for item in items
            if item["sk"]["S"].startswith(CHUNK_SK_PREFIX) and item["sk"]["S"] not in chunks
        }
        return self._assemble(location, head, chunks, garbage=garbage)

    def _assemble(
        self, location: Location, head: _Head, chunks: dict[str, dict[str, Any]], *, garbage: set[str]
    ) -> tuple[_State, list[Any]]:
        """State from the head's snapshot (one GET) and chunk items already in hand."""
        lines, body = self._read_snapshot(location, head) if head.snap_key else ([], b"")
        lines.extend(self._chunk_lines(location, head, chunks, head.snap_seq))
        entries = decode_lines(lines, self._head_location(location))
        state = _State(
            head=head,
            lines=lines,
            uuids=_uuids_of(entries),
            garbage=garbage,
            snap_body=body if len(body) < MIN_COPY_PART_BYTES else None,
        )
        return state, entries

    def _read_head(self, location: Location, items: list[dict[str, Any]]) -> _Head | None:
        for item in items:
            if item["sk"]["S"] == HEAD_SK:
                expires = item.get("expires_at", {}).get("N")
                if expires is not None and float(expires) < self._clock():
                    return None  # expired: TTL deletion lags, the transcript is gone already
                return _head_from_item(item, self._head_location(location))
        return None

    def _chunk_items(
        self, location: Location, head: _Head, items: list[dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """Chunk items that belong to the head (this epoch, not yet compacted) by sort key."""
        wanted = {chunk_sk(s) for s in range(head.snap_seq, head.next_seq)}
        return {
            item["sk"]["S"]: item
            for item in items
            if item["sk"]["S"] in wanted and item.get("epoch", {}).get("S") == head.epoch
        }

    def _chunk_lines(
        self, location: Location, head: _Head, chunks: dict[str, dict[str, Any]], first: int
    ) -> list[bytes]:
        lines: list[bytes] = []
        for seq in range(first, head.next_seq):
            sk = chunk_sk(seq)
            where = f"dynamodb://{self._table}/{location.pk}/{sk}"
            item = chunks.get(sk)
            if item is None:
                raise CorruptTranscriptError(where, f"chunk is missing (head version {head.version})")
            try:
                data = item["data"]["B"]
                count = int(item["n"]["N"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CorruptTranscriptError(where, f"chunk item lacks data/n: {exc!r}") from exc
            lines.extend(decompress_chunk(data, count, where))
        return lines

    def _read_snapshot(self, location: Location, head: _Head) -> tuple[list[bytes], bytes]:
        assert head.snap_key is not None
        where = f"s3://{self._bucket}/{head.snap_key}"
        try:
            response = self._call(
                "s3", "get_object", passthrough={"NoSuchKey"}, Bucket=self._bucket, Key=head.snap_key
            )
            body = response["Body"].read()
        except ClientError as exc:
            raise _SnapshotMissing(head.snap_key) from exc
        except BotoCoreError as exc:
            raise _storage_error("s3.GetObject", exc) from exc
        if len(body) != head.snap_size:
            raise CorruptTranscriptError(
                where, f"snapshot has {len(body)} bytes, head expects {head.snap_size}"
            )
        return decompress_snapshot(body, head.snap_count, where), body

    def _head_location(self, location: Location) -> str:
        return f"dynamodb://{self._table}/{location.pk}/{HEAD_SK}"

    # --- delete and listings ---------------------------------------------------------------

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

    # --- storage primitives ------------------------------------------------------------------

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

    def _delete_items(self, pk: str, sort_keys: list[str]) -> None:
        for start in range(0, len(sort_keys), 25):
            requests: list[dict[str, Any]] = [
                {"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": sk}}}}
                for sk in sort_keys[start : start + 25]
            ]
            for attempt in range(5):
                response = self._call("dynamodb", "batch_write_item", RequestItems={self._table: requests})
                requests = response.get("UnprocessedItems", {}).get(self._table, [])
                if not requests:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise StorageError("dynamodb.BatchWriteItem", f"{len(requests)} deletes stayed unprocessed")

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

    # --- cache ---------------------------------------------------------------------------

    def _key_lock(self, location: Location) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(location.pk, threading.Lock())

    def _cached(self, location: Location) -> _State | None:
        with self._lock:
            state = self._cache.get(location.pk)
            if state is not None:
                self._cache.move_to_end(location.pk)
            return state

    def _remember(self, location: Location, state: _State) -> None:
        with self._lock:
            old = self._cache.pop(location.pk, None)
            if old is not None:
                self._cache_bytes -= old.nbytes
            self._cache[location.pk] = state
            self._cache_bytes += state.nbytes
            while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                self._cache_bytes -= evicted.nbytes

    def _forget(self, location: Location) -> None:
        with self._lock:
            old = self._cache.pop(location.pk, None)
            if old is not None:
                self._cache_bytes -= old.nbytes

    def _next_mtime_ms(self, now: float) -> int:
        # Strictly increasing within the process so back-to-back appends differ.
        with self._lock:
            self._last_mtime_ms = max(int(now * 1000), self._last_mtime_ms + 1)
            return self._last_mtime_ms


# --- item codecs ---------------------------------------------------------------------------


def _head_item(location: Location, head: _Head, expires: dict[str, str]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": location.pk},
        "sk": {"S": HEAD_SK},
        "v": {"N": str(head.version)},
        "epoch": {"S": head.epoch},
        "next_seq": {"N": str(head.next_seq)},
        "snap_seq": {"N": str(head.snap_seq)},
        "snap_count": {"N": str(head.snap_count)},
        "snap_size": {"N": str(head.snap_size)},
        "snap_at": {"N": repr(head.snap_at)},
        "tail_bytes": {"N": str(head.tail_bytes)},
        "tx": {"S": head.tx},
        "project_key": {"S": location.project_key},
        "session_id": {"S": location.session_id},
        "expires_at": expires,
    }
    if head.snap_key is not None:
        item["snap_key"] = {"S": head.snap_key}
    if head.tail_at is not None:
        item["tail_at"] = {"N": repr(head.tail_at)}
    if head.summary is not None:
        item["summary"] = {"S": head.summary}
    if location.subpath is not None:
        item["subpath"] = {"S": location.subpath}
    return item


def _head_from_item(item: dict[str, Any], where: str) -> _Head:
    try:
        return _Head(
            version=int(item["v"]["N"]),
            epoch=item["epoch"]["S"],
            next_seq=int(item["next_seq"]["N"]),
            snap_key=item["snap_key"]["S"] if "snap_key" in item else None,
            snap_seq=int(item["snap_seq"]["N"]),
            snap_count=int(item["snap_count"]["N"]),
            snap_size=int(item["snap_size"]["N"]),
            snap_at=float(item["snap_at"]["N"]),
            tail_bytes=int(item["tail_bytes"]["N"]),
            tail_at=float(item["tail_at"]["N"]) if "tail_at" in item else None,
            tx=item["tx"]["S"],
            summary=item["summary"]["S"] if "summary" in item else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptTranscriptError(where, f"head item is malformed: {exc!r}") from exc


def _uuids_of(entries: list[Any]) -> set[str]:
    return {u for u in map(uuid_of, entries) if u is not None}


def _storage_error(operation: str, exc: Exception) -> StorageError:
    if isinstance(exc, (ClientError, BotoCoreError)):
        return storage_error(operation, exc, context="", permanent_codes=_PERMANENT_CODES)
    return StorageError(operation, f"{type(exc).__name__}: {exc}")
