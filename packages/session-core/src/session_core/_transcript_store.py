"""The Claude Agent SDK's ``SessionStore`` on DynamoDB + S3, without importing the SDK.

``TranscriptStore`` is the SDK-facing facade; each job lives in its own file, stacked as
base classes in this order: ``_transcript_calls`` (boto3 calls, request counts, errors),
``_transcript_cache`` (per-process cache and locks), ``_transcript_load`` (load and
catch-up), ``_transcript_append`` (append, compaction, garbage), ``_transcript_delete``
(delete, racing writers included), ``_transcript_listings`` (the session index, restore);
``_transcript_items`` says how heads, state and snapshot objects are encoded,
``_transcript_format`` how entries are.

Layout (one table with ``pk``/``sk`` strings and TTL attribute ``expires_at``, one bucket):

* ``pk = tx|<project>|<session>|<subpath or ~>`` is one transcript's partition:
  ``sk = head`` holds the head (version, epoch, next append number, which snapshot holds
  the older entries and its codec, summary), ``sk = c#<seq>`` holds one append batch as
  zstd-compressed JSON lines (``codec = zstd``). Chunk keys sort before ``head``, so ONE
  Query returns head and tail.
* ``pk = proj|<project>, sk = <session>`` indexes the project's sessions: original ids,
  ``main_mtime`` (epoch ms, the same write stamps the summary), the subpath set and the
  SDK's folded summary, and ``main_snap``: the snapshot the main transcript's head named at
  its last compaction (a hint: ``load_for_restore`` reads this item anyway and starts that
  download before its Query returns; the head decides), and ``main_size``: the main
  transcript's JSONL size as of its last append (a restore with a size limit starts no
  download past it), and ``writes``: how many appends have updated it (a delete changes it
  only while that count is the one it read). ``list_sessions``/``list_subkeys``/
  ``list_session_summaries`` read only these items.
* ``transcripts/<project>/<session>/<subpath or ~>/<epoch>/snap-<seq>-<token>.jsonl.zst``
  is a zstd JSONL snapshot of every entry before append number ``snap_seq`` (``zstd -dc``
  gives the CLI's file: it skips the padding), in a folder of its transcript's epoch (ones
  written before the folders lie beside them). ``transcripts/_padding/...`` is the padding.

Format versions: chunk items without ``codec`` hold zlib and heads without ``snap_codec``
name a gzip snapshot (``.jsonl.gz``): what the store wrote before zstd. Both are read as
before. A compaction re-uploads a small old snapshot as zstd after the padding; one of 5 MiB
or more keeps growing by server-side copy plus gzip members (frames of one codec per object).
Heads without ``snap_start`` name snapshots without padding (written before it, written
whole when S3 would not copy the padding even after putting it again, or past 5 MiB of
frames, where a compaction copies the frames only and leaves the padding behind). Code from before
the padding reads padded snapshots (zstd skips the padding frame) but downloads the padding;
a head it writes records no start, so that transcript's cold loads fetch the 5 MiB from then
on (correct, only slower): finish a deploy before taking turns on both versions.

An append is one TransactWriteItems: put the chunk, put the head (condition: the version
and epoch we read), update the index item. A conflict re-reads the head (one Query) and
tries again. A transaction whose replies were all lost re-reads it too: if the head carries
its token (or, after a compaction, still names its snapshot), it landed and the append
succeeds. When the tail grows past its limits (bytes, chunk count, age) or one batch
is too big for an item, the append compacts instead: the new snapshot is the old one plus
one zstd frame holding the newer entries (concatenated frames decode as one stream).
The old snapshot is copied inside S3 as part 1 of a multipart upload, so only the new
frame crosses the wire. S3 wants every part but the last to be 5 MiB or more, so a new
snapshot starts with a shared 5 MiB padding object (a zstd skippable frame, put once per
bucket, copied inside S3: ``_snapshot_padding``); the head's ``snap_start`` says where the
frames start, and loads never fetch the padding. Nothing stored is uploaded twice. The
head moves onto the new snapshot in the same kind of transaction; the replaced chunks and
snapshot are deleted afterwards (best effort; loaders ignore them, TTL and lifecycle
remove what a crash leaves), a chunk only while it holds the epoch it was found with (a
transcript written anew reuses chunk keys, so another writer may have just put one there).
A snapshot that never made it into a head is an orphan: never read, deleted by a later compaction
once it is older than ``orphan_grace_s``.

The head marks where the snapshot's frames start (``snap_frames``, at most 16, thinned
evenly), so a cold load can fetch it in byte ranges that each start on a frame and
decompress them on separate threads as they arrive. Marks are a hint: any subset is valid,
a head without them (or with marks that cannot be frame starts) reads the snapshot as one
stream, and a wrong one fails the frame's decompression (``CorruptTranscriptError``), never
the content. ``snap_frames_raw`` says where each marked frame's JSONL starts in the
transcript. Every read checks it: intact frames swapped in place decompress fine, so a
marked frame whose JSONL starts elsewhere is a ``CorruptTranscriptError`` (swaps between
two marks go unseen once there are more frames than marks). A restore writes each range's
JSONL into the CLI's file as it comes out (``TranscriptFile``), beside the download instead
of after it; a range whose JSONL is not the length those offsets say is not vouched for,
and the restore writes the file whole.

A cold load is one Query (+ the snapshot's ranges: one per started 2 MiB, at most 4). Each
store keeps the entries it has seen per transcript, as stored (decompressed JSONL, not
decoded); a load whose cache is current costs one Query of the head and reads nothing from
S3; new chunks come with that same Query. ``load`` decodes the entries once per call;
``load_stored`` decodes nothing and hands out the JSONL bytes (a restore writes them to the
CLI's file as they are). The uuids that de-duplicate appends are worked out on the first
append after a cold load.

Entries' ``uuid`` is an idempotency key (the SDK's ``import_session_to_store`` replays
whole transcripts): an entry whose uuid is already stored is skipped at append time.

Retention: the head and index items carry ``expires_at`` = now + ``retention_days``,
refreshed by every write; chunks get 5 days more, as the bucket's objects do (it expires them
``retention_days + 5`` days after creation). A write that finds the snapshot or the oldest
tail chunk older than ``refresh_after_days`` (4) compacts, so every part of a transcript
outlives its head by a day: a message sent before its TTL is read as of then (_read_as_of).
A head past ``expires_at`` reads as absent even before DynamoDB's lagging TTL sweep removes it.
A subagent transcript not written for ``retention_days`` expires on its own; its subpath
stays listed until the session is deleted and ``load`` then returns ``None`` for it.

A delete retires the head first (its version moves on and its expiry into the past, so loads
find nothing and a stale writer's conditional write fails), then removes the retired epoch's
chunks and snapshot folder, then the head, then settles the index item. An append racing it
either lands before the retirement (and is deleted with the rest) or starts a new epoch whose
chunks, snapshot folder and index entries the delete leaves alone (``_transcript_delete``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._errors import ConfigError, CorruptTranscriptError
from ._logging import get_logger
from ._settings import DEFAULT_RETENTION_DAYS
from ._transcript_file import TranscriptFile
from ._transcript_format import (
    StoredTranscript,
    encode_batch,
    locate,
    project_index_pk,
)
from ._transcript_items import (
    DAY_S,
    DEFAULT_CACHE_LIMIT_BYTES,
    DEFAULT_CHUNK_LIMIT_BYTES,
    DEFAULT_MAX_TAIL_CHUNKS,
    DEFAULT_ORPHAN_GRACE_S,
    DEFAULT_REFRESH_AFTER_DAYS,
    DEFAULT_TAIL_LIMIT_BYTES,
    FoldSummary,
    SessionListing,
    SessionSummary,
    _State,
)
from ._transcript_listings import Listings

__all__ = ["SessionListing", "SessionSummary", "TranscriptStore"]

_log = get_logger(__name__)


class TranscriptStore(Listings):
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
        retention_days: int = DEFAULT_RETENTION_DAYS,
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

    async def load_stored(
        self, key: Mapping[str, Any], *, max_bytes: int | None = None
    ) -> StoredTranscript | None:
        """Like ``load``, but the entries stay JSONL bytes: nothing is decoded.

        For a restore that writes the transcript file itself. Same requests as ``load``
        (cold: one Query + one GET; a current cache: one Query and no S3 read). A snapshot
        that would make it bigger than ``max_bytes`` is not read: ``TranscriptTooLargeError``.
        """
        location = locate(key)
        return await asyncio.to_thread(self._load_stored_locked, location, max_bytes)

    def known_stored(self, key: Mapping[str, Any]) -> StoredTranscript | None:
        """What this store last wrote or read for ``key``, without a request (None: nothing)."""
        state = self._cached(locate(key))
        return None if state is None else state.stored()

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
        """Delete a transcript; a main key (no ``subpath``) takes all its subpaths with it.

        Safe against a writer still appending: its append is either deleted with the rest or
        stored after the delete as a transcript of its own, never mixed with what was deleted."""
        location = locate(key)
        await asyncio.to_thread(self._delete_locked, location)

    async def list_subkeys(self, key: Mapping[str, Any]) -> list[str]:
        """Subpaths (e.g. ``subagents/agent-1``) written under the session, sorted."""
        location = locate(key, allow_subpath=False)
        return self._subpaths(await asyncio.to_thread(self._get_index_item, location))

    async def load_for_restore(
        self, key: Mapping[str, Any], *, max_bytes: int | None = None, into: TranscriptFile | None = None
    ) -> tuple[StoredTranscript | None, list[str]]:
        """``load_stored(key)`` and ``list_subkeys(key)`` with the same requests, but faster cold:
        the session index's item names the snapshot, so its download starts while the Query of
        head and tail is still running.

        With ``max_bytes``, a transcript whose JSONL the head says is bigger raises
        ``TranscriptTooLargeError`` before its snapshot is read. The early download is not
        started when the index item's ``main_size`` (or, in an item written before every
        append recorded it, the snapshot alone) is bigger; one that passes only with a tail the
        item did not count is cancelled once the Query says so. Heads written before zstd do
        not record the snapshot's size: those load whole.

        With ``into`` (the restore's file, open), the early download writes the snapshot's
        JSONL there as it decompresses; ``into.written`` then says how much of the returned
        transcript is already in the file (0: none of it, write it all)."""
        location = locate(key)
        return await asyncio.to_thread(self._load_for_restore_locked, location, max_bytes, into)
