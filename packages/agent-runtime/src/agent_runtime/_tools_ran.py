"""A turn retried after its failed attempt ran tools: the model call after them failed (529
overloaded, a 5xx, a stream the CLI could not recover), but the calls ran and did what they do
(a file written, a mail sent, a paid API called), and the store holds them and their results.
Resumed before the turn's message, as a failed turn otherwise is, the retry ran them all again.
It resumes after the last call whose result is stored (with every call before it answered) and
sends the message again after a note: the same message, the calls above ran and must not be
repeated. A call after that point (the attempt was cut while it ran, or its result never
reached the store) may or may not have run: the note names it and asks the agent to check
before running it again (decided: named and left to the agent, neither run again blindly nor
hidden)."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from session_core import StoredTranscript

from ._prompt_marks import decode_entry, prompt_text

_NOTE_START = (
    "(From the bot, not the user: your earlier answer to the message below broke off, unseen by the user"
)
_RAN = ", after the tool calls above. They already ran and must not be repeated: carry on from their results."
_UNSURE = (
    " These calls of it have no result on record, so they may or may not have run: check what "
    "each would have done before running it again: {calls}."
)
_SAME = " This is the same message again, not a new one: answer it once.)"
# Lines holding a tool call ("type":"tool_use") or a result ("tool_use_id").
_TOOL_USE = b'"tool_use'
_CALL_SHOWN = 200  # characters of a call's input named in the note


class ToolsRan(NamedTuple):
    """Where the retry resumes (None: where it would without tools) and the note it sends."""

    resume_at: str | None
    note: str


def tools_ran_after(stored: StoredTranscript, following: int) -> ToolsRan | None:
    """The tool work of the failed attempt in the last ``following`` lines (those after its
    prompt), or None when it made no tool call."""
    point: str | None = None
    pending: set[str] = set()  # ids of calls without a result yet
    after_point: list[str] = []  # calls made after ``point``, as the note names them
    for entry in _tool_entries(stored, following):
        content = entry["message"].get("content")
        blocks = [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []
        if entry["type"] == "assistant":
            for block in blocks:
                if block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                    pending.add(block["id"])
                    after_point.append(_shown(block))
            continue
        answered = [block.get("tool_use_id") for block in blocks if block.get("type") == "tool_result"]
        pending.difference_update(answered)
        if answered and not pending and isinstance(entry.get("uuid"), str):
            point, after_point = entry["uuid"], []
    if point is None and not after_point:
        return None
    note = _NOTE_START + (_RAN if point is not None else ".")
    if after_point:
        note += _UNSURE.format(calls="; ".join(after_point))
    return ToolsRan(point, note + _SAME)


def tools_ran_note(content: object) -> str | None:
    """The note a stored prompt (its content) was sent with, if any: a retry that failed too
    before it ran a tool; the next resumes at the same place and needs the same note."""
    text = prompt_text(content)
    if not text.startswith(_NOTE_START):
        return None
    return text.split("\n\n", 1)[0]


def _tool_entries(stored: StoredTranscript, following: int) -> list[dict[str, Any]]:
    """The main conversation's messages among the last ``following`` lines that hold a tool
    call or result, oldest first."""
    lines = []
    for line, after in stored.lines_containing(_TOOL_USE):
        if after >= following:
            break
        lines.append(line)
    entries = (decode_entry(line) for line in reversed(lines))
    return [
        entry
        for entry in entries
        if entry.get("type") in ("user", "assistant")
        and isinstance(entry.get("message"), dict)
        and not entry.get("isSidechain")
    ]


def _shown(call: dict[str, Any]) -> str:
    """A call as the note names it: its tool and the start of its input (JSON: one line)."""
    shown = json.dumps(call.get("input"), ensure_ascii=False)
    if len(shown) > _CALL_SHOWN:
        shown = shown[:_CALL_SHOWN] + "…"
    return f"{call.get('name')} {shown}"
