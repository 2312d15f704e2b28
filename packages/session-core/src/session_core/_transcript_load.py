"""Loading a transcript: one Query of head and tail (+ the snapshot when not cached), catching
a cached copy up with only the chunks it lacks, and assembling the state."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain, pairwise
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from ._aws_errors import aws_error_code
from ._errors import CorruptTranscriptError, StaleHeadError, TranscriptTooLargeError
from ._logging import get_logger
from ._read_as_of import expiry_judged_at, longest_read_past_expiry_s
from ._transcript_cache import StateCache
from ._transcript_file import TranscriptFile
from ._transcript_format import (
    CHUNK_SK_PREFIX,
    CODEC_ZLIB,
    CODEC_ZSTD,
    HEAD_SK,
    Location,
    StoredTranscript,
    check_snapshot,
    chunk_sk,
    decode_jsonl,
    decompress_chunk,
    decompress_snapshot,
    decompress_snapshot_part,
    jsonl_of,
    jsonl_size,
    uuid_of,
    uuids_of_jsonl,
)
from ._transcript_items import (
    MAX_SNAPSHOT_RANGES,
    MIN_COPY_PART_BYTES,
    SNAPSHOT_RANGE_BYTES,
    STREAM_PIECE_BYTES,
    _ExpiredPartSwept,
    _Head,
    _head_from_item,
    _ReadCancelled,
    _SnapshotMissing,
    _SnapshotRef,
    _State,
    _storage_error,
    frame_content_at,
    frame_spans,
    ranges_per_span,
    raw_spans,
    snapshot_named_by_index,
    snapshot_ref,
)

_log = get_logger("session_core._transcript_store")


class Loading(StateCache):
    def _load_locked(self, location: Location) -> list[Any] | None:
        with self._key_lock(location):
            state = self._refresh_cache(location)
            if state is None:
                return None
            # Decoded once per load, fresh dicts every time: callers may mutate what they get.
            entries = decode_jsonl(state.stored().jsonl, self._head_location(location))
            if state.uuids is None:
                state.uuids = {u for u in map(uuid_of, entries) if u is not None}
            return entries

    def _load_stored_locked(
        self, location: Location, max_bytes: int | None = None
    ) -> StoredTranscript | None:
        with self._key_lock(location):
            state = self._refresh_cache(location, max_bytes=max_bytes)
            return None if state is None else state.stored()

    def _refresh_cache(
        self, location: Location, early: EarlyRead | None = None, max_bytes: int | None = None
    ) -> _State | None:
        state = self._refresh(location, self._cached(location), early, max_bytes)
        if state is None:
            self._forget(location)
        else:
            self._remember(location, state)
        return state

    def _uuids(self, location: Location, state: _State) -> set[str]:
        """The stored entries' uuids; worked out on first need (an append after a restore)."""
        if state.uuids is None:
            state.uuids = uuids_of_jsonl(state.stored().jsonl, self._head_location(location))
        return state.uuids

    def _refresh(
        self,
        location: Location,
        cached: _State | None,
        early: EarlyRead | None = None,
        max_bytes: int | None = None,
    ) -> _State | None:
        """Bring ``cached`` up to the stored head (cold: Query + GET; warm: one Query). A
        snapshot is read only if the whole transcript fits in ``max_bytes``."""
        for _ in range(3):
            try:
                if cached is None:
                    return self._read_state(location, self._query(location.pk), early, max_bytes)
                return self._catch_up(location, cached, max_bytes)
            except _SnapshotMissing as missing:
                # A concurrent compaction may have replaced it between our Query and GET.
                head = self._query_head(location)
                if head is None:
                    return None
                if head.snap_key == missing.args[0]:
                    raise CorruptTranscriptError(
                        f"s3://{self._bucket}/{missing.args[0]}",
                        "snapshot object is missing (the head names it; nothing else was changed)",
                    ) from None
                cached = None
                early = None
            except _ExpiredPartSwept as swept:
                _log.info("transcript.expired_part_swept", part=swept.args[0])
                return None
        raise StaleHeadError(location.describe(), cached.head.version if cached else 0)

    def _catch_up(self, location: Location, cached: _State, max_bytes: int | None) -> _State | None:
        items = self._query(location.pk, start=chunk_sk(cached.head.next_seq))
        head = self._read_head(location, items)
        if head is None:
            return None
        if head.epoch != cached.head.epoch:  # deleted and written anew elsewhere
            return self._read_state(location, self._query(location.pk), max_bytes=max_bytes)
        if head.version == cached.head.version:
            return cached
        chunks = self._chunk_items(location, head, items)
        if head.snap_seq > cached.head.next_seq:
            # Another writer compacted entries we never saw: the snapshot has them.
            return self._assemble(location, head, chunks, garbage=dict(cached.garbage), max_bytes=max_bytes)
        snap_body = cached.snap_body if head.snap_key == cached.head.snap_key else None
        new_lines = self._chunk_lines(location, head, chunks, cached.head.next_seq)
        new_uuids = uuids_of_jsonl([jsonl_of(new_lines)], self._head_location(location))  # checks JSON
        return _State(
            head=head,
            snap=cached.snap,
            tail=[*cached.tail, *new_lines],
            uuids=None if cached.uuids is None else cached.uuids | new_uuids,
            garbage=dict(cached.garbage),
            snap_body=snap_body,
        )

    def _read_state(
        self,
        location: Location,
        items: list[dict[str, Any]],
        early: EarlyRead | None = None,
        max_bytes: int | None = None,
    ) -> _State | None:
        head = self._read_head(location, items)
        if head is None:
            return None
        chunks = self._chunk_items(location, head, items)
        garbage = {
            item["sk"]["S"]: item.get("epoch", {}).get("S")
            for item in items
            if item["sk"]["S"].startswith(CHUNK_SK_PREFIX) and item["sk"]["S"] not in chunks
        }
        return self._assemble(location, head, chunks, garbage=garbage, early=early, max_bytes=max_bytes)

    def _assemble(
        self,
        location: Location,
        head: _Head,
        chunks: dict[str, dict[str, Any]],
        *,
        garbage: dict[str, str | None],
        early: EarlyRead | None = None,
        max_bytes: int | None = None,
    ) -> _State:
        """State from the head's snapshot (read now, or already by ``early``) and chunk items
        already in hand; no decode. Raises ``TranscriptTooLargeError`` before reading a
        snapshot that would make the transcript bigger than ``max_bytes``."""
        ref = snapshot_ref(head)
        tail = self._chunk_lines(location, head, chunks, head.snap_seq)
        if max_bytes is not None and ref is not None and ref.raw_size is not None:
            size = ref.raw_size + jsonl_size((), tail)
            if size > max_bytes:
                raise TranscriptTooLargeError(location.describe(), size, max_bytes)
        snap: tuple[bytes, ...] = ()
        body = b""
        if ref is not None:
            snap, body, _ = (early.result_for(ref) if early else None) or self._read_snapshot(ref)
        return _State(
            head=head,
            snap=snap,
            tail=tail,
            uuids=None,
            garbage=garbage,
            snap_body=body if len(body) < MIN_COPY_PART_BYTES else None,
        )

    def _query_head(self, location: Location) -> _Head | None:
        """The stored head alone (one Query that skips the chunks)."""
        return self._read_head(location, self._query(location.pk, start=HEAD_SK))

    def _read_head(self, location: Location, items: list[dict[str, Any]]) -> _Head | None:
        for item in items:
            if item["sk"]["S"] == HEAD_SK:
                expires = item.get("expires_at", {}).get("N")
                # Up to the day every part of it still outlives the head by (see _read_as_of).
                latest_read_s = longest_read_past_expiry_s(self._refresh_after_s)
                if expires is not None and float(expires) < expiry_judged_at(self._clock(), latest_read_s):
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
                if head.expires_at is not None and head.expires_at < self._clock():
                    # Read as of a message sent before the TTL: a chunk written before chunks
                    # outlived the head by 5 days may be swept already. Live, it is corruption.
                    raise _ExpiredPartSwept(where)
                raise CorruptTranscriptError(where, f"chunk is missing (head version {head.version})")
            try:
                data = item["data"]["B"]
                count = int(item["n"]["N"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CorruptTranscriptError(where, f"chunk item lacks data/n: {exc!r}") from exc
            codec = item.get("codec", {}).get("S", CODEC_ZLIB)  # none: written before zstd
            lines.extend(decompress_chunk(data, count, where, codec))
        return lines

    def _read_snapshot(
        self,
        snapshot: _SnapshotRef,
        cancel: threading.Event | None = None,
        into: TranscriptFile | None = None,
    ) -> _SnapshotRead:
        """The snapshot's JSONL fragments and, while it is small enough to re-upload, its body.

        A big one comes as byte ranges over parallel connections (S3 serves ~90 MB/s per
        connection). Ranges are grouped at the frame starts the head marks; each group is
        decompressed by a thread of its own (zstd lets go of the GIL) while its first range is
        still arriving and its later ones download beside it. A snapshot without marks is one
        group. The padding before the first frame is never fetched. With ``into``, each group
        also writes its JSONL there as it comes out, at the offset the head marks for it."""
        key, size, start = snapshot.key, snapshot.size, snapshot.start
        where = f"s3://{self._bucket}/{key}"
        count = max(1, min(MAX_SNAPSHOT_RANGES, -(-(size - start) // SNAPSHOT_RANGE_BYTES)))
        marks = snapshot.frames if snapshot.codec == CODEC_ZSTD else ()
        groups = frame_spans(start, size, marks, count) if marks else [(start, size)]
        ranges = ranges_per_span(groups, count)
        keep_body = start == 0 and size < MIN_COPY_PART_BYTES
        received: list[list[bytes]] = [[] for _ in groups]
        # Where each group's JSONL lies in the transcript: checked on every read (frames swapped
        # in place decompress fine, in the wrong order), and where a restore writes it.
        raws = raw_spans(snapshot, groups) if snapshot.codec == CODEC_ZSTD else None
        in_file = raws if into is not None else None
        filled = [False] * len(groups)  # each group's JSONL went to ``into`` where it belongs

        def decompress_group(index: int) -> tuple[bytes, ...]:
            start, stop = groups[index]
            parts = ranges[index]
            edges = [start + (stop - start) * i // parts for i in range(parts + 1)]
            spans = list(pairwise(edges))
            later = [fetches.submit(self._get_range, key, span, size, where, cancel) for span in spans[1:]]
            whole = spans[0] == (0, size)
            first = self._stream_range(key, None if whole else spans[0], size, where, cancel)
            pieces = chain(first, (body.result() for body in later))
            kept = _kept(pieces, received[index]) if keep_body else pieces
            writer = _RangeWriter(into, in_file[index][0]) if into is not None and in_file else None
            on_content = writer.write if writer else None
            content_at = frame_content_at(snapshot, groups[index], raws[index]) if raws else None
            if len(groups) == 1:
                out = decompress_snapshot(
                    kept, snapshot.count, where, snapshot.codec, snapshot.raw_size, on_content, content_at
                )
            else:
                out = decompress_snapshot_part(kept, where, on_content, content_at)
            if writer is not None and in_file is not None:
                filled[index] = writer.offset == in_file[index][1]
            return out

        with ThreadPoolExecutor(count) as fetches, ThreadPoolExecutor(len(groups)) as groups_pool:
            parts = tuple(chain.from_iterable(groups_pool.map(decompress_group, range(len(groups)))))
        if len(groups) > 1:
            check_snapshot(parts, snapshot.count, where, snapshot.raw_size)
        body = b"".join(piece for pieces in received for piece in pieces)
        return _SnapshotRead(parts, body, streamed=all(filled))

    def _get_range(
        self, key: str, span: tuple[int, int], size: int, where: str, cancel: threading.Event | None
    ) -> bytes:
        return b"".join(self._stream_range(key, span, size, where, cancel))

    def _stream_range(
        self, key: str, span: tuple[int, int] | None, size: int, where: str, cancel: threading.Event | None
    ) -> Iterator[bytes]:
        """The bytes of the snapshot (or of one range of it) as they arrive; checks their count.
        Stops with ``_ReadCancelled`` at its next piece once ``cancel`` is set."""
        if cancel is not None and cancel.is_set():
            raise _ReadCancelled
        request: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if span is not None:
            request["Range"] = f"bytes={span[0]}-{span[1] - 1}"
        try:
            response = self._call("s3", "get_object", passthrough={"NoSuchKey", "InvalidRange"}, **request)
        except ClientError as exc:
            if aws_error_code(exc) == "InvalidRange":
                shorter = f"snapshot is shorter than the {size} bytes the head expects"
                raise CorruptTranscriptError(where, shorter) from exc
            raise _SnapshotMissing(key) from exc
        content_range = response.get("ContentRange", "")
        whole = content_range.rpartition("/")[2] if span else str(response.get("ContentLength", ""))
        if whole.isdigit() and int(whole) != size:
            raise CorruptTranscriptError(where, f"snapshot has {whole} bytes, head expects {size}")
        wanted = size if span is None else span[1] - span[0]
        received = 0
        try:
            for piece in response["Body"].iter_chunks(STREAM_PIECE_BYTES):
                if cancel is not None and cancel.is_set():
                    raise _ReadCancelled
                received += len(piece)
                yield piece
        except BotoCoreError as exc:  # the connection broke mid-download
            raise _storage_error("s3.GetObject", exc) from exc
        if received != wanted:
            raise CorruptTranscriptError(where, f"snapshot range has {received} bytes, expected {wanted}")

    def _head_location(self, location: Location) -> str:
        return f"dynamodb://{self._table}/{location.pk}/{HEAD_SK}"


class _SnapshotRead(NamedTuple):
    parts: tuple[bytes, ...]  # its JSONL, as fragments of whole lines
    body: bytes  # the object itself while small enough to re-upload, else empty
    streamed: bool  # all of ``parts`` went to the read's TranscriptFile at its place


class _RangeWriter:
    """Writes one group's JSONL into a TranscriptFile from where the head says it starts."""

    def __init__(self, into: TranscriptFile, offset: int) -> None:
        self._into = into
        self.offset = offset

    def write(self, content: bytes) -> None:
        self._into.write_at(self.offset, content)
        self.offset += len(content)


@dataclass(frozen=True)
class EarlyRead:
    """A snapshot read started before the Query that names it returned: the one the session's
    index item named (``index``), read by ``read``, writing ``into`` a restore's file if any."""

    index: Future[dict[str, Any] | None]
    read: Future[_SnapshotRead | None]
    cancel: threading.Event
    into: TranscriptFile | None = None

    def result_for(self, ref: _SnapshotRef) -> _SnapshotRead | None:
        """The early read if it is of ``ref`` (the head's snapshot); None: read it now. A read
        that wrote all of its JSONL into the restore's file vouches for it there."""
        named = snapshot_named_by_index(self.index.result())
        if named is None or not named.same_object(ref):
            self.cancel.set()  # another snapshot: stop that download, do not wait for it
            return None
        read = self.read.result()  # None if it failed or was not worth starting
        if read is not None and read.streamed and self.into is not None and ref.raw_size is not None:
            self.into.vouch(ref.raw_size)
        return read


def _kept(pieces: Iterator[bytes], into: list[bytes]) -> Iterator[bytes]:
    """Pass ``pieces`` on, keeping each in ``into`` as well."""
    for piece in pieces:
        into.append(piece)
        yield piece
