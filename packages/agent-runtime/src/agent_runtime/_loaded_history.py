"""What of a stored history the CLI loads on resume: from its last compact boundary on, and
what that compaction kept from before it.

Claude Code reads nothing before a compaction's boundary into the conversation, nor into
memory (``bench/runtime_turn.py --compacted``: a 102 MB history compacted before its last turn
peaks as a short session does on the CLI's side), so the memory a turn needs follows what comes
after it. Only a line the CLI itself wrote as a boundary counts: one whose entry is a
``system`` message of subtype ``compact_boundary``. A tool's output that spells the marker
inside its own entry is looked past; past MOST_LOOKED such lines the whole history is counted,
the safe side (a refusal, never a CLI killed for lack of memory).

A compaction at the start of a turn keeps that turn's message as it is, one in the middle of
a turn its tool calls and outputs so far: the boundary names them (``compactMetadata``'s
``preservedSegment``, ``preservedMessages``) and they stay where they were written, before it.
The CLI loads them and sends them again, so what it loads begins at the first of them (the
segment's head): a long message, or a tool's long output, kept that way would otherwise pass
as small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from session_core import StoredTranscript

from ._prompt_marks import decode_entry

_BOUNDARY = b'"compact_boundary"'
MOST_LOOKED = 64


def bytes_the_cli_loads(stored: StoredTranscript) -> int:
    """The transcript's bytes from its last compact boundary's line (or the first message
    that compaction kept, before it) to its end; all of them when it has none (or hides it
    under more than MOST_LOOKED lines that only quote it, or its kept messages cannot be found)."""
    for looked, (line, from_line) in enumerate(stored.tails_containing(_BOUNDARY)):
        if looked == MOST_LOOKED:
            break
        entry = decode_entry(line)
        if entry.get("type") == "system" and entry.get("subtype") == "compact_boundary":
            kept = _first_kept(entry)
            return from_line if kept is None else max(from_line, _from_entry(stored, kept))
    return stored.size


def loaded_after_compaction(path: Path) -> tuple[int, int]:
    """The local transcript at ``path`` as the CLI left it after a compaction: its bytes, and
    those the CLI loads from then on. Read whole, between two runs (no CLI holds it then): what
    the compaction kept of the conversation lies before its boundary."""
    jsonl = path.read_bytes()
    return len(jsonl), bytes_the_cli_loads(StoredTranscript(revision="", count=0, jsonl=(jsonl,)))


def _first_kept(boundary: dict[str, Any]) -> str | None:
    """The uuid of the first message the compaction kept (None: it kept none): the head of
    its preserved segment, else the first of its preserved messages (both in the order the
    CLI wrote them)."""
    meta = boundary.get("compactMetadata")
    if not isinstance(meta, dict):
        return None
    segment, messages = meta.get("preservedSegment"), meta.get("preservedMessages")
    if isinstance(segment, dict) and isinstance(segment.get("headUuid"), str):
        return str(segment["headUuid"])
    for key in ("allUuids", "uuids"):
        uuids = messages.get(key) if isinstance(messages, dict) else None
        if isinstance(uuids, list) and uuids and isinstance(uuids[0], str):
            return uuids[0]
    return None


def _from_entry(stored: StoredTranscript, uuid: str) -> int:
    """The bytes from the line of the entry ``uuid`` to the end; all of them when it is not
    found among the MOST_LOOKED newest lines that spell its uuid as an entry's own."""
    needle = b'"uuid":"' + uuid.encode() + b'"'
    for looked, (line, from_line) in enumerate(stored.tails_containing(needle)):
        if looked == MOST_LOOKED:
            break
        if decode_entry(line).get("uuid") == uuid:
            return from_line
    return stored.size
