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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from ._errors import CorruptTranscriptError, InvalidSessionKeyError, SessionCoreError

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


def uuid_of(entry: Any) -> str | None:
    value = entry.get("uuid") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


# --- compression -----------------------------------------------------------------------


def compress_chunk(lines: Sequence[bytes]) -> bytes:
    """A chunk item's payload: the batch's JSON lines, newline-joined, zlib-compressed."""
    return zlib.compress(b"\n".join(lines), 6)


def decompress_chunk(data: bytes, count: int, location: str) -> list[bytes]:
    """Inverse of ``compress_chunk``; checks the entry count recorded next to it."""
    try:
        raw = zlib.decompress(data)
    except zlib.error as exc:
        raise CorruptTranscriptError(location, f"chunk does not decompress: {exc}") from exc
    lines = raw.split(b"\n") if raw else []
    if len(lines) != count:
        raise CorruptTranscriptError(location, f"chunk holds {len(lines)} entries, head expects {count}")
    return lines


def compress_snapshot(lines: Sequence[bytes]) -> bytes:
    """A snapshot object: gzip of the JSONL transcript (``gunzip`` gives the CLI's file)."""
    return gzip.compress(b"".join(line + b"\n" for line in lines), compresslevel=6, mtime=0)


def decompress_snapshot(data: bytes, count: int, location: str) -> list[bytes]:
    """Inverse of ``compress_snapshot``; gzip's CRC and the recorded count catch damage."""
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptTranscriptError(location, f"snapshot does not decompress: {exc}") from exc
    if raw and not raw.endswith(b"\n"):
        raise CorruptTranscriptError(location, "snapshot is truncated (no final newline)")
    lines = raw[:-1].split(b"\n") if raw else []
    if len(lines) != count:
        raise CorruptTranscriptError(location, f"snapshot holds {len(lines)} entries, head expects {count}")
    return lines
