"""How a transcript is kept in DynamoDB items and S3 objects: the head, the in-memory state of
one transcript, the snapshot object names, the store's limits and its error mapping."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, TypedDict

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from ._aws_errors import storage_error
from ._errors import CorruptTranscriptError, StorageError
from ._transcript_format import (
    CODEC_GZIP,
    CODEC_ZSTD,
    HEAD_SK,
    Location,
    StoredTranscript,
    jsonl_of,
)

DAY_S = 86400.0
# DynamoDB items are at most 400 KB and one Query page 1 MB: a chunk stays well under the
# first, head + tail well under the second, so one request returns them all.
DEFAULT_CHUNK_LIMIT_BYTES = 300_000
DEFAULT_TAIL_LIMIT_BYTES = 600_000
DEFAULT_MAX_TAIL_CHUNKS = 200
# S3 keeps objects a little longer than the registry so a session's items never point at
# an expired snapshot (infra/template.yaml's SessionObjectExpiryDays >= SessionTtlDays + this).
S3_EXPIRY_MARGIN_DAYS = 5
# S3 expires objects retention + 5 days after creation while items live retention days
# after their last write; rewriting a snapshot (and old chunks) that is older than 4 days
# whenever the transcript is written keeps every part of a live session alive.
DEFAULT_REFRESH_AFTER_DAYS = 4.0
# A snapshot that no head names may still be in flight for a concurrent writer.
DEFAULT_ORPHAN_GRACE_S = 3600.0
DEFAULT_CACHE_LIMIT_BYTES = 256 * 1024 * 1024
# S3's smallest non-final multipart part: bigger snapshots are extended by server-side copy.
MIN_COPY_PART_BYTES = 5 * 1024 * 1024
# A cold load fetches a snapshot as one byte range per started SNAPSHOT_RANGE_BYTES (at most
# MAX_SNAPSHOT_RANGES), over parallel connections.
SNAPSHOT_RANGE_BYTES = 2 * 1024 * 1024
MAX_SNAPSHOT_RANGES = 4
# A download is decompressed in pieces of this size as they arrive.
STREAM_PIECE_BYTES = 256 * 1024
# A head marks at most this many frame starts, each with where its JSONL starts: enough to
# split a snapshot into MAX_SNAPSHOT_RANGES ranges within ~3 % of even. The head is rewritten
# by every append, so it must not grow with the history (16 pairs: ~0.5 KB).
MAX_FRAME_MARKS = 16

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


class _ExpiredPartSwept(Exception):
    """A head expired by now, read only as of an earlier moment (see _read_as_of), lacks a
    chunk DynamoDB's TTL sweep may have taken: the history is gone, as an expired one is."""


class _ReadCancelled(Exception):
    """An early snapshot download nobody needs any more stopped."""


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
    snap_codec: str  # of the snapshot object: CODEC_ZSTD, or CODEC_GZIP for older ones
    snap_raw_size: int | None  # bytes of its JSONL; None in heads written before zstd
    # Where the snapshot's first frame starts: after the padding (see _snapshot_padding),
    # or 0 in objects written whole. Loads read from here on.
    snap_start: int = 0
    # Offsets where a later zstd frame of the snapshot starts: a load splits its byte ranges
    # there and decompresses them side by side. Any subset is valid; () marks none.
    snap_frames: tuple[int, ...] = ()
    # Where each marked frame's JSONL starts in the transcript file, one per mark (or none:
    # heads from before these were kept). A restore writes each range's JSONL there at once.
    snap_frames_raw: tuple[int, ...] = ()
    # The item's TTL (epoch seconds) as read from the table; None in a head this process built.
    expires_at: float | None = None


class _SnapshotRef(msgspec.Struct, frozen=True, kw_only=True):
    """What a load needs to read and check one snapshot object (all of it is in the head)."""

    key: str
    size: int
    codec: str
    count: int
    raw_size: int | None
    start: int = 0
    frames: tuple[int, ...] = ()
    frames_raw: tuple[int, ...] = ()

    def same_object(self, other: _SnapshotRef) -> bool:
        """Whether both name the same object as written (frame marks are only a hint)."""
        mine = (self.key, self.size, self.codec, self.count, self.raw_size, self.start)
        return mine == (other.key, other.size, other.codec, other.count, other.raw_size, other.start)


def snapshot_ref(head: _Head) -> _SnapshotRef | None:
    """The snapshot ``head`` names (None: all its entries are in chunks)."""
    if head.snap_key is None:
        return None
    return _SnapshotRef(
        key=head.snap_key,
        size=head.snap_size,
        codec=head.snap_codec,
        count=head.snap_count,
        raw_size=head.snap_raw_size,
        start=head.snap_start,
        frames=head.snap_frames,
        frames_raw=head.snap_frames_raw,
    )


def encode_snapshot_ref(ref: _SnapshotRef) -> str:
    return msgspec.json.encode(ref).decode()


def size_named_by_index(item: dict[str, Any] | None) -> int | None:
    """The main transcript's JSONL size as the session's index item last recorded it (every
    append records it; items written before that do not): a hint too, None if unreadable."""
    text = (item or {}).get("main_size", {}).get("N")
    if not isinstance(text, str) or not (text.isascii() and text.isdigit() and len(text) < 20):
        return None
    return int(text)


def snapshot_named_by_index(item: dict[str, Any] | None) -> _SnapshotRef | None:
    """The main transcript's snapshot as the session's index item last named it; a hint only
    (the head decides), so anything unreadable is None."""
    text = (item or {}).get("main_snap", {}).get("S")
    if not isinstance(text, str):
        return None
    try:
        return msgspec.json.decode(text, type=_SnapshotRef)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


@dataclass
class _State:
    """All a store knows of one transcript at ``head.version``, as it is stored (not decoded)."""

    head: _Head
    snap: tuple[bytes, ...]  # JSONL fragments of the head.snap_count entries in the snapshot
    tail: list[bytes]  # JSON lines of the entries after it (chunks, this process's appends)
    uuids: set[str] | None  # None until an append or a load needs them: a restore never does
    # Chunks no head needs any more: sort key -> the epoch they were written in (None: not
    # recorded). A new epoch reuses sort keys, so a chunk is deleted only while it holds that.
    garbage: dict[str, str | None] = field(default_factory=dict)
    snap_body: bytes | None = None  # the snapshot object while small enough to re-upload whole

    @property
    def nbytes(self) -> int:
        return (
            sum(len(part) for part in self.snap)
            + sum(len(line) + 64 for line in self.tail)
            + len(self.snap_body or b"")
        )

    def stored(self) -> StoredTranscript:
        return StoredTranscript(
            revision=f"{self.head.epoch}:{self.head.version}",
            count=self.head.snap_count + len(self.tail),
            jsonl=(*self.snap, jsonl_of(self.tail)),
        )


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
        item["snap_codec"] = {"S": head.snap_codec}
    if head.snap_start:
        item["snap_start"] = {"N": str(head.snap_start)}
    if head.snap_frames:
        item["snap_frames"] = {"S": ",".join(map(str, head.snap_frames))}
        if len(head.snap_frames_raw) == len(head.snap_frames):
            item["snap_frames_raw"] = {"S": ",".join(map(str, head.snap_frames_raw))}
    if head.snap_raw_size is not None:
        item["snap_raw_size"] = {"N": str(head.snap_raw_size)}
    if head.tail_at is not None:
        item["tail_at"] = {"N": repr(head.tail_at)}
    if head.summary is not None:
        item["summary"] = {"S": head.summary}
    if location.subpath is not None:
        item["subpath"] = {"S": location.subpath}
    return item


def _head_from_item(item: dict[str, Any], where: str) -> _Head:
    try:
        head = _Head(
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
            # Snapshots written before zstd have no codec attribute.
            snap_codec=item.get("snap_codec", {}).get("S", CODEC_GZIP),
            snap_raw_size=(raw_size := int(item["snap_raw_size"]["N"]) if "snap_raw_size" in item else None),
            snap_start=(start := _snapshot_start(item)),
            snap_frames=(marks := _frame_marks(item, start, int(item["snap_size"]["N"]))),
            snap_frames_raw=_raw_marks(item, marks, raw_size),
            expires_at=float(item["expires_at"]["N"]) if "expires_at" in item else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptTranscriptError(where, f"head item is malformed: {exc!r}") from exc
    return head


def _snapshot_start(item: dict[str, Any]) -> int:
    start = int(item["snap_start"]["N"]) if "snap_start" in item else 0
    if start and not 0 < start < int(item["snap_size"]["N"]):  # a frame follows the padding
        raise ValueError(f"snap_start {start} is outside the snapshot's {item['snap_size']['N']} bytes")
    return start


def _frame_marks(item: dict[str, Any], start: int, size: int) -> tuple[int, ...]:
    """The head's frame marks; none when they are missing or unusable (they are only a hint:
    a wrong one that passes this check fails its frame's decompression, never the content)."""
    try:
        marks = tuple(int(mark) for mark in item["snap_frames"]["S"].split(","))
    except (KeyError, TypeError, ValueError):
        return ()
    if not _rising(start, *marks, size):
        return ()
    return marks


def _raw_marks(item: dict[str, Any], marks: tuple[int, ...], raw_size: int | None) -> tuple[int, ...]:
    """Where the marked frames' JSONL starts, one per mark; none when missing or unusable (a
    hint too: a restore checks each range's length against them before trusting its file)."""
    try:
        raws = tuple(int(raw) for raw in item["snap_frames_raw"]["S"].split(","))
    except (KeyError, TypeError, ValueError):
        return ()
    return raws if _usable_raws(marks, raws, raw_size) else ()


def _usable_raws(marks: tuple[int, ...], raws: tuple[int, ...], raw_size: int | None) -> bool:
    """One offset per mark, rising, inside the JSONL of ``raw_size`` bytes."""
    return raw_size is not None and len(raws) == len(marks) and _rising(0, *raws, raw_size)


def _rising(*offsets: int) -> bool:
    """Each offset after the one before: marks inside the bounds given first and last."""
    return all(a < b for a, b in pairwise(offsets))


def with_frame_mark(
    marks: tuple[int, ...], raws: tuple[int, ...], offset: int, raw_offset: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Frame marks, and where their JSONL starts, after one more frame starts at ``offset``
    (its JSONL at ``raw_offset``), thinned to MAX_FRAME_MARKS. Marks from before raw offsets
    were kept (none of them has one) are dropped: a load reads the frames before the new mark
    as one group (still in several ranges) and can write every group into the file."""
    if len(raws) != len(marks):
        marks, raws = (), ()
    if offset:
        marks, raws = (*marks, offset), (*raws, raw_offset)
    while len(marks) > MAX_FRAME_MARKS:
        marks = marks[1::2]  # every other one: the ranges a load makes stay about even
        raws = raws[1::2]
    return marks, raws


def frame_spans(start: int, size: int, marks: tuple[int, ...], count: int) -> list[tuple[int, int]]:
    """Up to ``count`` byte ranges covering a snapshot's frames (bytes ``start`` to ``size``),
    each starting on a frame (the mark nearest to each even cut)."""
    length = size - start
    cuts = {min(marks, key=lambda mark: abs(mark - start - length * i / count)) for i in range(1, count)}
    edges = [start, *sorted(cuts), size]
    return list(pairwise(edges))


def raw_spans(snapshot: _SnapshotRef, spans: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
    """Where the JSONL of each span (from ``frame_spans``) lies in the transcript file: from 0
    for the first, from the raw offset of the marked frame it starts on for the others, up to
    the next one's. None when the head does not say (heads from before raw offsets, or without
    the snapshot's size)."""
    raw_size = snapshot.raw_size
    if raw_size is None:
        return None
    if len(spans) == 1:
        return [(0, raw_size)]
    if not _usable_raws(snapshot.frames, snapshot.frames_raw, raw_size):
        return None
    raw_of = dict(zip(snapshot.frames, snapshot.frames_raw, strict=True))
    starts = [0, *(raw_of[start] for start, _ in spans[1:])]
    return list(pairwise([*starts, raw_size]))


def frame_content_at(
    snapshot: _SnapshotRef, span: tuple[int, int], raw_span: tuple[int, int]
) -> dict[int, int]:
    """For ``decompress_frames`` of one span (from ``frame_spans``, its JSONL at ``raw_span``
    from ``raw_spans``): where each frame the head marks inside it starts, and the span's end,
    both relative to the span, mapped to where their JSONL starts relative to the span's."""
    (start, stop), (raw_start, raw_stop) = span, raw_span
    at = {stop - start: raw_stop - raw_start}
    if _usable_raws(snapshot.frames, snapshot.frames_raw, snapshot.raw_size):
        for mark, raw in zip(snapshot.frames, snapshot.frames_raw, strict=True):
            if start < mark < stop:
                at[mark - start] = raw - raw_start
    return at


def ranges_per_span(spans: list[tuple[int, int]], count: int) -> list[int]:
    """How many byte ranges each span is fetched in: one each, the rest of ``count`` to the
    spans with the most bytes per range, so a load never asks for more than ``count``."""
    sizes = [stop - start for start, stop in spans]
    step = sum(sizes) / count
    allotted = [1] * len(spans)
    for _ in range(count - len(spans)):
        neediest = max(range(len(spans)), key=lambda i: sizes[i] / step - allotted[i])
        allotted[neediest] += 1
    return allotted


_CONTENT_TYPES = {CODEC_ZSTD: "application/zstd", CODEC_GZIP: "application/gzip"}
_SUFFIXES = {CODEC_ZSTD: ".jsonl.zst", CODEC_GZIP: ".jsonl.gz"}


def _snapshot_key(location: Location, epoch: str, seq: int, token: str, codec: str) -> str:
    # In a folder of its epoch: a delete removes every object of the transcript it deleted and
    # none of one written anew meanwhile (a new transcript has an epoch of its own).
    return f"{location.s3_prefix}{epoch}/snap-{seq + 1:012d}-{token}{_SUFFIXES[codec]}"


def snapshot_epoch(location: Location, key: str) -> str | None:
    """The epoch whose folder holds the object ``key`` of ``location``'s transcript (None: a
    snapshot from before the folders, named by its transcript alone)."""
    folder, slash, _ = key.removeprefix(location.s3_prefix).partition("/")
    return folder if slash else None


def _content_type(key: str) -> str:
    return _CONTENT_TYPES[CODEC_GZIP if key.endswith(".gz") else CODEC_ZSTD]


def _storage_error(operation: str, exc: Exception) -> StorageError:
    if isinstance(exc, (ClientError, BotoCoreError)):
        return storage_error(operation, exc, context="", permanent_codes=_PERMANENT_CODES)
    return StorageError(operation, f"{type(exc).__name__}: {exc}")
