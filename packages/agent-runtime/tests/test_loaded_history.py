"""What of a stored history the CLI loads: from the last compact boundary the CLI wrote, not
from a line where a tool's output only spells one (it would make a huge history pass as small,
and the CLI loading it all would be killed for lack of memory)."""

from __future__ import annotations

import json

from agent_runtime._loaded_history import MOST_LOOKED, bytes_the_cli_loads
from session_core import StoredTranscript


def line(entry: dict[str, object]) -> bytes:
    return json.dumps(entry, separators=(",", ":")).encode() + b"\n"


BOUNDARY = line({"type": "system", "subtype": "compact_boundary", "parentUuid": None, "uuid": "b"})
SUMMARY = line({"type": "user", "isCompactSummary": True, "message": {"role": "user", "content": "s"}})
TURN = line({"type": "user", "message": {"role": "user", "content": "x" * 1000}})
# A tool's structured result that spells a boundary inside its own entry.
PLANTED = line(
    {
        "type": "user",
        "toolUseResult": {"type": "system", "subtype": "compact_boundary"},
        "message": {"role": "user", "content": [{"type": "tool_result", "content": '"compact_boundary"'}]},
    }
)


def stored(*lines: bytes) -> StoredTranscript:
    # cut in two fragments, as the store hands out a snapshot and a tail
    half = len(lines) // 2
    return StoredTranscript(
        revision="r", count=len(lines), jsonl=(b"".join(lines[:half]), b"".join(lines[half:]))
    )


def test_a_compacted_history_loads_from_its_last_boundary_on() -> None:
    history = stored(TURN, TURN, BOUNDARY, SUMMARY, TURN, TURN, BOUNDARY, SUMMARY, TURN)
    assert bytes_the_cli_loads(history) == len(BOUNDARY + SUMMARY + TURN)


def test_a_history_never_compacted_loads_whole() -> None:
    history = stored(TURN, TURN, TURN, TURN)
    assert bytes_the_cli_loads(history) == history.size


def test_a_tools_output_that_spells_a_boundary_is_looked_past() -> None:
    history = stored(TURN, BOUNDARY, SUMMARY, TURN, PLANTED, TURN)
    assert bytes_the_cli_loads(history) == len(BOUNDARY + SUMMARY + TURN + PLANTED + TURN)
    assert bytes_the_cli_loads(stored(TURN, PLANTED, TURN, TURN)) == len(TURN + PLANTED + TURN + TURN)


def test_a_boundary_hidden_under_many_planted_lines_counts_the_whole_history() -> None:
    history = stored(TURN, BOUNDARY, SUMMARY, *[PLANTED] * MOST_LOOKED)
    assert bytes_the_cli_loads(history) == history.size
    found = stored(TURN, BOUNDARY, SUMMARY, *[PLANTED] * (MOST_LOOKED - 1))
    assert bytes_the_cli_loads(found) == found.size - len(TURN)


def kept_by(head: str) -> bytes:
    """A boundary whose compaction kept the messages from ``head`` on, written before it."""
    meta = {"preservedSegment": {"headUuid": head, "anchorUuid": "s", "tailUuid": head}}
    return line({"type": "system", "subtype": "compact_boundary", "uuid": "b", "compactMetadata": meta})


def test_what_a_compaction_kept_before_its_boundary_loads_with_it() -> None:
    prompt = line({"type": "user", "uuid": "p", "message": {"role": "user", "content": "y" * 5000}})
    reply = line({"type": "user", "parentUuid": "p", "uuid": "r", "message": {"content": "x"}})
    history = stored(TURN, TURN, prompt, reply, kept_by("p"), SUMMARY, TURN)
    assert bytes_the_cli_loads(history) == len(prompt + reply + kept_by("p") + SUMMARY + TURN)
    # Kept messages it cannot find: all of it counts.
    assert bytes_the_cli_loads(stored(TURN, prompt, kept_by("gone"), SUMMARY)) == len(
        TURN + prompt + kept_by("gone") + SUMMARY
    )
