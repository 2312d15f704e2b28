"""What of a stored history the CLI loads on resume: from its last compact boundary on.

Claude Code reads nothing before a compaction's boundary into the conversation, nor into
memory (``bench/runtime_turn.py --compacted``: a 102 MB history compacted before its last turn
peaks as a short session does on the CLI's side), so the memory a turn needs follows what comes
after it. Only a line the CLI itself wrote as a boundary counts: one whose entry is a
``system`` message of subtype ``compact_boundary``. A tool's output that spells the marker
inside its own entry is looked past; past MOST_LOOKED such lines the whole history is counted,
the safe side (a refusal, never a CLI killed for lack of memory).
"""

from __future__ import annotations

from session_core import StoredTranscript

from ._prompt_marks import decode_entry

_BOUNDARY = b'"compact_boundary"'
MOST_LOOKED = 64


def bytes_the_cli_loads(stored: StoredTranscript) -> int:
    """The transcript's bytes from its last compact boundary's line to its end; all of them
    when it has none (or hides it under more than MOST_LOOKED lines that only quote it)."""
    for looked, (line, from_line) in enumerate(stored.tails_containing(_BOUNDARY)):
        if looked == MOST_LOOKED:
            break
        entry = decode_entry(line)
        if entry.get("type") == "system" and entry.get("subtype") == "compact_boundary":
            return from_line
    return stored.size
