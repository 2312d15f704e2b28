"""The resume point's scan: the newest prompt the runtime sent, found in the stored bytes."""

from __future__ import annotations

import json
from typing import Any

from agent_runtime._prompt_marks import find_last_prompt, prompt_uuid
from session_core import StoredTranscript


def stored(entries: list[dict[str, Any]], cut: int = 0) -> StoredTranscript:
    """The entries as compact JSONL, in two fragments split after ``cut`` lines."""
    lines = [json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries]
    parts = (b"".join(lines[:cut]), b"".join(lines[cut:]))
    return StoredTranscript(revision="r", count=len(entries), jsonl=parts)


def test_the_newest_prompt_is_found_past_replies_and_markers_that_name_it() -> None:
    first, second = prompt_uuid(41), prompt_uuid(42)
    entries: list[dict[str, Any]] = [
        {"type": "user", "uuid": first, "parentUuid": None, "message": {"content": "hi"}},
        {"type": "assistant", "uuid": "a1", "parentUuid": first},
        {"type": "user", "uuid": second, "parentUuid": "a1", "message": {"content": "more"}},
    ]
    # A long answer: every reply names the prompt (parentUuid), and so does the CLI's marker.
    entries += [{"type": "assistant", "uuid": f"r{i}", "parentUuid": second} for i in range(200)]
    entries.append({"type": "last-prompt", "leafUuid": second, "lastPrompt": "more"})
    for cut in (0, 2, 3, 150, len(entries)):
        found = find_last_prompt(stored(entries, cut))
        assert found is not None
        following, entry, turn_id = found
        assert (turn_id, entry["uuid"], following) == (42, second, 201)


def test_a_transcript_without_the_runtimes_prompts_has_no_resume_point() -> None:
    entries = [
        {"type": "user", "uuid": "11111111-2222-4333-8444-555555555555", "message": {"content": "x"}},
        {"type": "assistant", "uuid": "a", "parentUuid": "x-ab07-4b07-name-only"},
    ]
    assert find_last_prompt(stored(entries, 1)) is None
