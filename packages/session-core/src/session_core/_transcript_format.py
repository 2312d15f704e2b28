"""Where a transcript lives and how its parts are encoded (keys, items, compressed JSONL).

The SDK's key parts (``project_key``, ``session_id``, ``subpath``) are arbitrary strings.
Each is percent-encoded over the bytes of its UTF-8 form with only ``A-Z a-z 0-9 _ -``
left as they are, so an encoded part never holds ``/``, ``.``, ``|`` or ``~``: it cannot
form a path step, escape its S3 prefix or run into a neighbouring DynamoDB key part.
Parts whose encoding would be long are replaced by ``~`` + SHA-256, which no short
encoding can start with, so the mapping stays injective. The original strings are kept
as item attributes (``list_sessions`` and ``list_subkeys`` return those).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ._errors import CorruptTranscriptError, InvalidSessionKeyError, SessionCoreError
from ._zstd_frames import FrameError, decompress_frames

MAX_KEY_PART_CHARS = 1024
_SHORT_ENCODING_LIMIT = 120
_SAFE_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_MAIN_MARKER = "~"  # the main transcript's subpath slot; no encoded subpath equals it

TRANSCRIPT_PK_PREFIX = "tx|"
PROJECT_PK_PREFIX = "proj|"
S3_PREFIX = "transcripts/"
HEAD_SK = "head"
CHUNK_SK_PREFIX = "c#"


class InvalidTranscriptEntryError(SessionCoreError, ValueError):
    """Raised by ``append`` when an entry is not a JSON object that can be stored as JSON."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"transcript entry #{index} cannot be stored: {reason}")
        self.index = index
        self.reason = reason


def _shown(value: object) -> object:
    # Keep error messages readable when someone passes a megabyte-long key.
    if isinstance(value, str) and len(value) > 80:
        return value[:80] + "…"
    return value


def encode_key_part(field: str, value: object) -> str:
    """Encode one key part for use inside DynamoDB keys and S3 key segments."""
    if not isinstance(value, str):
        raise InvalidSessionKeyError(field, _shown(value), "must be a string")
    if not value:
        raise InvalidSessionKeyError(field, value, "must not be empty")
    if len(value) > MAX_KEY_PART_CHARS:
        raise InvalidSessionKeyError(field, _shown(value), f"longer than {MAX_KEY_PART_CHARS} characters")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidSessionKeyError(field, _shown(value), "not valid Unicode text") from exc
    encoded = "".join(chr(b) if b in _SAFE_BYTES else f"%{b:02X}" for b in raw)
    if len(encoded) > _SHORT_ENCODING_LIMIT:
        return "~" + hashlib.sha256(raw).hexdigest()
    return encoded


@dataclass(frozen=True)
class Location:
    """Every storage address of one transcript (main or one subpath of a session)."""

    project_key: str
    session_id: str
    subpath: str | None
    pk: str
    index_pk: str
    index_sk: str
    s3_prefix: str
    session_s3_prefix: str

    def describe(self) -> str:
        tail = f"/{self.subpath}" if self.subpath is not None else ""
        return f"{self.project_key}/{self.session_id}{tail}"

    def sdk_key(self) -> dict[str, str]:
        key = {"project_key": self.project_key, "session_id": self.session_id}
        if self.subpath is not None:
            key["subpath"] = self.subpath
        return key


def locate(key: object, *, allow_subpath: bool = True) -> Location:
    """Validate an SDK key mapping and compute its storage addresses."""
    if not isinstance(key, Mapping):
        raise InvalidSessionKeyError("key", _shown(key), "must be a mapping with project_key and session_id")
    project_key = key.get("project_key")
    session_id = key.get("session_id")
    subpath = key.get("subpath") if allow_subpath else None
    project = encode_key_part("project_key", project_key)
    session = encode_key_part("session_id", session_id)
    sub = _MAIN_MARKER if subpath is None else encode_key_part("subpath", subpath)
    assert isinstance(project_key, str) and isinstance(session_id, str)
    assert subpath is None or isinstance(subpath, str)
    return Location(
        project_key=project_key,
        session_id=session_id,
        subpath=subpath,
        pk=f"{TRANSCRIPT_PK_PREFIX}{project}|{session}|{sub}",
        index_pk=f"{PROJECT_PK_PREFIX}{project}",
        index_sk=session,
        s3_prefix=f"{S3_PREFIX}{project}/{session}/{sub}/",
        session_s3_prefix=f"{S3_PREFIX}{project}/{session}/",
    )


def project_index_pk(project_key: object) -> str:
    """Partition of the per-project session index."""
    return PROJECT_PK_PREFIX + encode_key_part("project_key", project_key)


def chunk_sk(seq: int) -> str:
    """Sort key of the chunk item holding append number ``seq``; sorts before ``head``."""
    return f"{CHUNK_SK_PREFIX}{seq:012d}"


# --- entries ---------------------------------------------------------------------------

_entries_decoder = msgspec.json.Decoder(list[Any])


@dataclass(frozen=True)
class Batch:
    """One append's entries: the originals (for the summary fold), their JSON lines and uuids."""

    entries: tuple[Mapping[str, Any], ...]
    lines: tuple[bytes, ...]
    uuids: tuple[str | None, ...]


def encode_batch(entries: object) -> Batch:
    """Encode each entry once as one compact JSON line; raise on anything not storable."""
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        raise InvalidTranscriptEntryError(-1, "entries must be a list of JSON objects")
    lines: list[bytes] = []
    uuids: list[str | None] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise InvalidTranscriptEntryError(index, f"expected a JSON object, got {type(entry).__name__}")
        try:
            text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:  # sets, bytes, NaN, too deep
            raise InvalidTranscriptEntryError(index, f"not JSON-serializable: {exc}") from exc
        try:
            line = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (json.loads makes them): keep them escaped
            line = json.dumps(entry, ensure_ascii=True, separators=(",", ":")).encode()
        lines.append(line)
        uuid = entry.get("uuid")
        uuids.append(uuid if isinstance(uuid, str) else None)
    return Batch(entries=tuple(entries), lines=tuple(lines), uuids=tuple(uuids))


def decode_lines(lines: Sequence[bytes], location: str) -> list[Any]:
    """Decode JSON lines into fresh entry dicts (one parse for the whole list)."""
    if not lines:
        return []
    try:
        return _entries_decoder.decode(b"[" + b",".join(lines) + b"]")
    except (msgspec.DecodeError, RecursionError):
        pass
    try:  # escaped lone surrogates are valid JSON that only the stdlib decodes
        return [json.loads(line) for line in lines]
    except (ValueError, RecursionError) as exc:
        raise CorruptTranscriptError(location, f"an entry is not valid JSON: {exc}") from exc


def decode_jsonl(jsonl: Sequence[bytes], location: str) -> list[Any]:
    """Decode JSONL fragments (whole lines, each ending in a newline) into fresh entry dicts."""
    entries: list[Any] = []
    for part in jsonl:
        try:
            entries.extend(_any_decoder.decode_lines(part))
        except (msgspec.DecodeError, RecursionError):
            entries.extend(decode_lines(part.splitlines(), location))
    return entries


class _EntryId(msgspec.Struct):
    """Only an entry's ``uuid``: msgspec skips every other field without building it."""

    uuid: Any = None


_any_decoder = msgspec.json.Decoder()
_entry_ids_decoder = msgspec.json.Decoder(_EntryId)


def uuids_of_jsonl(jsonl: Sequence[bytes], location: str) -> set[str]:
    """The ``uuid`` of every entry, without decoding the entries (a fraction of ``decode_jsonl``)."""
    found: set[str] = set()
    for part in jsonl:
        try:
            ids = _entry_ids_decoder.decode_lines(part)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            # Lone surrogates or a line that is not an object: the full decoder says which.
            found.update(u for u in map(uuid_of, decode_lines(part.splitlines(), location)) if u is not None)
            continue
        found.update(i.uuid for i in ids if isinstance(i.uuid, str))
    return found


def jsonl_size(fragments: Sequence[bytes], lines: Sequence[bytes]) -> int:
    """The size of the JSONL file that ``fragments`` then ``lines`` make, without joining them."""
    return sum(len(part) for part in fragments) + sum(len(line) + 1 for line in lines)


def jsonl_of(lines: Sequence[bytes]) -> bytes:
    """JSON lines as one JSONL fragment (every line ends in a newline)."""
    return b"".join(line + b"\n" for line in lines) if lines else b""


@dataclass(frozen=True)
class StoredTranscript:
    """A transcript as stored, not decoded: JSONL fragments that make the CLI's file.

    ``revision`` names the stored state (it changes with every write, and when a deleted
    transcript is written anew), so a caller can tell whether a copy it made is current.
    """

    revision: str
    count: int
    jsonl: tuple[bytes, ...] = field(repr=False)  # can be 100 MB

    def lines_containing(self, needle: bytes) -> Iterator[tuple[bytes, int]]:
        """Lines that contain ``needle``, newest first, each with how many lines follow it.

        Searches the bytes, so a long transcript is not split into lines to find a few; each
        byte is counted once however many lines match."""
        following = 0  # lines after ``counted``: in this fragment and the ones after it
        for part in reversed(self.jsonl):
            end = counted = len(part)
            while (hit := part.rfind(needle, 0, end)) >= 0:
                start = part.rfind(b"\n", 0, hit) + 1
                stop = part.index(b"\n", hit)
                following += part.count(b"\n", stop + 1, counted)
                counted = stop + 1
                yield part[start:stop], following
                end = start
            following += part.count(b"\n", 0, counted)

    def tails_containing(self, needle: bytes) -> Iterator[tuple[bytes, int]]:
        """Lines that contain ``needle``, newest first, each with the bytes from its start to
        the transcript's end (what a reader that starts at that line reads)."""
        later = 0  # bytes of the fragments after ``part``
        for part in reversed(self.jsonl):
            end = len(part)
            while (hit := part.rfind(needle, 0, end)) >= 0:
                start = part.rfind(b"\n", 0, hit) + 1
                yield part[start : part.index(b"\n", hit)], len(part) - start + later
                end = start
            later += len(part)

    @property
    def size(self) -> int:
        """Bytes of the JSONL file it makes."""
        return sum(len(part) for part in self.jsonl)

    def last_line(self) -> bytes | None:
        """The newest entry's line (None for an empty transcript)."""
        for part in reversed(self.jsonl):
            if part:
                return part[part.rfind(b"\n", 0, len(part) - 1) + 1 : -1]
        return None


def uuid_of(entry: Any) -> str | None:
    value = entry.get("uuid") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


# --- compression -----------------------------------------------------------------------
# zstd (with frame checksums) decompresses ~4x faster than zlib, so a restore's decompression
# no longer dominates it, and at any level it decompresses at the same speed. Levels, measured on
# ~110 KB turns (bench/session_store.py's synthetic ones) on a 2-core x86 machine:
# - a chunk item: level 15. DynamoDB bills every KB written and stored, and this is the one
#   write on every append's path: 13 % smaller than zlib 6 (level 3: 0.4 %) for ~17 ms per
#   110 KB batch. Above 256 KiB zstd gives level 15 its parameters for big inputs (255-370 ms
#   per MB), so a bigger batch gets level 9 (~26 ms per MB).
# - a snapshot frame (~20 turns, ~2.5 MB, once per compaction): level 11, 10 % smaller than
#   level 3 for 35-70 ms per MB; it is the bytes every cold restore downloads. A whole snapshot
#   written again (its old object lost, an old gzip one rewritten) can be 100 MB: above 8 MiB
#   level 3 (~4 ms per MB), or that append would take seconds.
# Items and heads written before it carry no codec attribute: zlib chunks, gzip snapshots.
# They are read forever; a gzip snapshot too big to re-upload keeps growing as gzip members.

CODEC_ZSTD = "zstd"
CODEC_GZIP = "gzip"  # snapshots without a codec attribute
CODEC_ZLIB = "zlib"  # chunks without a codec attribute


@dataclass(frozen=True)
class _Levels:
    """A zstd level, and the cheaper one for input above ``big_above`` bytes."""

    level: int
    big_level: int
    big_above: int


_CHUNK_LEVELS = _Levels(level=15, big_level=9, big_above=256 * 1024)
_FRAME_LEVELS = _Levels(level=11, big_level=3, big_above=8 * 1024 * 1024)


def _zstd_compress(raw: bytes, levels: _Levels) -> bytes:
    import zstandard  # on first use: the zip functions import session_core but store nothing

    level = levels.level if len(raw) <= levels.big_above else levels.big_level
    # A compressor per call: zstandard's objects must not be shared between threads.
    return zstandard.ZstdCompressor(level=level, write_checksum=True).compress(raw)


def _zstd_decompress(
    pieces: Iterable[bytes],
    location: str,
    what: str,
    on_content: Callable[[bytes], None] | None = None,
    content_at: Mapping[int, int] | None = None,
) -> list[bytes]:
    """The content of each frame in consecutive pieces of one stream, decompressed as each
    frame is whole (a download may still be running); ``on_content`` gets it as it comes.
    Snapshots are concatenated frames, one per compaction; a chunk is one."""
    import zstandard

    try:
        return decompress_frames(pieces, on_content=on_content, content_at=content_at)
    except (zstandard.ZstdError, FrameError) as exc:
        raise CorruptTranscriptError(location, f"{what} does not decompress: {exc}") from exc


def compress_chunk(lines: Sequence[bytes]) -> bytes:
    """A chunk item's payload: the batch's JSON lines, newline-joined, zstd-compressed."""
    return _zstd_compress(b"\n".join(lines), _CHUNK_LEVELS)


def decompress_chunk(data: bytes, count: int, location: str, codec: str = CODEC_ZSTD) -> list[bytes]:
    """Inverse of ``compress_chunk`` (or of the older zlib chunks); checks the entry count."""
    try:
        if codec == CODEC_ZLIB:
            raw = zlib.decompress(data)
        else:
            raw = b"".join(_zstd_decompress([data], location, "chunk"))
    except zlib.error as exc:
        raise CorruptTranscriptError(location, f"chunk does not decompress: {exc}") from exc
    lines = raw.split(b"\n") if raw else []
    if len(lines) != count:
        raise CorruptTranscriptError(location, f"chunk holds {len(lines)} entries, head expects {count}")
    return lines


def compress_snapshot(jsonl: Sequence[bytes], codec: str = CODEC_ZSTD) -> bytes:
    """A snapshot object, or one more member of one: JSONL fragments compressed as one frame.

    zstd frames and gzip members both concatenate: appending a member extends the file.
    """
    raw = b"".join(jsonl)
    if codec == CODEC_GZIP:
        return gzip.compress(raw, compresslevel=6, mtime=0)
    return _zstd_compress(raw, _FRAME_LEVELS)


def decompress_snapshot(
    pieces: Iterable[bytes],
    count: int,
    location: str,
    codec: str = CODEC_ZSTD,
    raw_size: int | None = None,
    on_content: Callable[[bytes], None] | None = None,
    content_at: Mapping[int, int] | None = None,
) -> tuple[bytes, ...]:
    """Inverse of ``compress_snapshot`` over the object's consecutive byte ranges: its JSONL,
    as fragments of whole lines. Checksums catch damage; the size (or, for heads that do not
    record it, the entry count) catches a missing frame; ``content_at`` (from the head's frame
    marks) frames out of order. ``on_content`` gets the JSONL in order as it is decompressed
    (unchecked until this returns)."""
    try:
        if codec == CODEC_GZIP:
            parts: tuple[bytes, ...] = (gzip.decompress(b"".join(pieces)),)
            if on_content is not None:
                on_content(parts[0])
        else:
            parts = _whole_lines(_zstd_decompress(pieces, location, "snapshot", on_content, content_at))
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptTranscriptError(location, f"snapshot does not decompress: {exc}") from exc
    check_snapshot(parts, count, location, raw_size)
    return parts


def decompress_snapshot_part(
    pieces: Iterable[bytes],
    location: str,
    on_content: Callable[[bytes], None] | None = None,
    content_at: Mapping[int, int] | None = None,
) -> tuple[bytes, ...]:
    """The JSONL of a byte range of a zstd snapshot that starts and ends on frame boundaries,
    as fragments of whole lines (a frame each: compactions write whole lines); ``on_content``
    gets it in order as it is decompressed; ``content_at`` as for ``decompress_snapshot``."""
    parts = _whole_lines(_zstd_decompress(pieces, location, "snapshot", on_content, content_at))
    if parts and not parts[-1].endswith(b"\n"):
        raise CorruptTranscriptError(location, "a part of the snapshot does not end on a line")
    return parts


def _whole_lines(fragments: list[bytes]) -> tuple[bytes, ...]:
    """``fragments`` with any that ends inside a line joined to the ones after it."""
    out: list[bytes] = []
    partial: list[bytes] = []
    for fragment in fragments:
        partial.append(fragment)
        if fragment.endswith(b"\n"):
            out.append(partial[0] if len(partial) == 1 else b"".join(partial))
            partial = []
    if partial:
        out.append(b"".join(partial))
    return tuple(out)


def check_snapshot(parts: Sequence[bytes], count: int, location: str, raw_size: int | None) -> None:
    """Raise unless the decompressed parts are the whole snapshot the head describes."""
    if parts and parts[-1] and not parts[-1].endswith(b"\n"):
        raise CorruptTranscriptError(location, "snapshot is truncated (no final newline)")
    if raw_size is not None:
        found_size = sum(len(part) for part in parts)
        if found_size != raw_size:
            expected = f"snapshot holds {found_size} bytes, head expects {raw_size}"
            raise CorruptTranscriptError(location, expected)
        return
    found = sum(part.count(b"\n") for part in parts)
    if found != count:
        raise CorruptTranscriptError(location, f"snapshot holds {found} entries, head expects {count}")
