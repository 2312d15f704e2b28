"""A turn retried after its failed attempt ran tools: the model call after them failed (529
overloaded, a 5xx, a stream the CLI could not recover), but the calls ran and did what they do
(a file written, a mail sent, a paid API called), and the store holds them and their results.
Resumed before the turn's message, as a failed turn otherwise is, the retry ran them all again.
It resumes after the last call whose result is stored (with every call before it answered) and
sends the message again after a note: the same message, the calls above ran and must not be
repeated. A call after that point (the attempt was cut while it ran, or its result never
reached the store) may or may not have run: the note names it and asks the agent to check
before running it again (decided: named and left to the agent, neither run again blindly nor
hidden).

A call refused before it ran did not run: a PreToolUse hook refused it (the store could not
take the transcript before it, ``_save_before_tools``; the approval gate held it back,
``_approval_gate``: it waits for the user, another call does, it is too long to show), or the
CLI's permission policy did (``disallowed_tools``, ``dontAsk``). It counts as never made and no
note names it (decided: it never ran, and its refusal need not hold for the retry, whose hooks
decide again). The retry resumes before it, so that the agent may make it again; where it stays
above (made in one model message with a call that ran, or before calls that ran), its refusal
shows and the note names which of the calls above ran. A call held for approval there says the
user was asked, but a failed attempt keeps no approval: the note says none was asked, so that
the agent makes the call again (asked for then) instead of telling the user to expect buttons
that never come. A refusal is known by the CLI's record on the result's entry
(``_refused_calls``), which no tool's output can write: a result that merely reads like one
counts as run.

A turn that ends without an answer and is not retried (retries spent, out of time, its CLI
crashed) is left out of the conversation by the next message, tools and all: the next
message is sent after a note naming the calls that ran (and those that may have), once, so
that the agent does not repeat them unawares and can tell the user. When the CLI compacted
the history in the middle of that turn, the next message resumes at the summary, which covers
the message and the work before it: the note says so, and names the calls on both sides of it.
The notes quote every call as JSON: what a tool's output led the model to write cannot end a
note or forge one."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from session_core import StoredTranscript

from ._prompt_marks import decode_entry, prompt_text
from ._refused_calls import held_for_approval, refused_call

_NOTE_START = (
    "(From the bot, not the user: your earlier answer to the message below broke off, unseen by the user"
)
_RAN = ", after the tool calls above. They already ran and must not be repeated: carry on from their results."
# Some calls above were refused before they ran (see the module's docstring).
_SOME_RAN = (
    ", after the tool calls above. These of them already ran and must not be repeated: {calls}; "
    "carry on from their results. The others above were refused and did not run."
)
# One of them was held for the user's approval: its refusal says it was asked for (see above).
_NOT_ASKED = (
    " Whatever their results say, the user was not asked to approve any of them: make such a "
    "call again if it is still needed, and its approval is asked for then."
)
_UNSURE = (
    " These calls of it have no result on record, so they may or may not have run: check what "
    "each would have done before running it again: {calls}."
)
_SAME = " This is the same message again, not a new one: answer it once.)"
# The next message after a turn that ended without an answer (see ``unfinished_turn_note``).
_UNFINISHED_START = (
    "(From the bot, not the user: your answer to an earlier message broke off and never reached the user; "
)
_LEFT_OUT = "that message and your work on it are left out above"
_SUMMARISED = (
    "the summary above was written while you were answering it and covers that message and "
    "your work on it until then; the rest is left out"
)
# The calls may have been made on either side of a summary: the wording places them on neither.
_TOOLS_HAD_RUN = ". Tool calls you made for it did run, though."
_UNFINISHED_RAN = " These ran: {calls}."
_UNFINISHED_END = (
    " Do not run them again unasked; should the message below ask for the same, first tell the "
    "user what already ran. The message below is a new one.)"
)
_CARRIED = (_NOTE_START, _UNFINISHED_START)
# Lines holding a tool call ("type":"tool_use") or a result ("tool_use_id").
_TOOL_USE = b'"tool_use'
_CALL_SHOWN = 200  # characters of a call's input named in the note


class ToolsRan(NamedTuple):
    """Where the retry resumes (None: where it would without tools) and the note it sends."""

    resume_at: str | None
    note: str


class _ToolWork(NamedTuple):
    point: str | None  # the last result stored with every call before it answered
    # The calls up to ``point`` that ran (as the notes name them) when a refused one is among
    # them (it stays above ``point``); None when every call up to it ran.
    ran_above_if_some_refused: list[str] | None
    held_above: bool  # one refused above ``point`` was held for the user's approval
    after_point: list[str]  # calls made after ``point``, as the notes name them
    answered: list[str]
    unanswered: list[str]


def tools_ran_after(stored: StoredTranscript, following: int) -> ToolsRan | None:
    """The tool work of the failed attempt in the last ``following`` lines (those after its
    prompt), or None when it made no tool call."""
    work = _tool_work(stored, following)
    if work is None:
        return None
    if work.point is None:
        note = _NOTE_START + "."
    elif work.ran_above_if_some_refused is None:
        note = _NOTE_START + _RAN
    else:
        note = _NOTE_START + _SOME_RAN.format(calls=_listed(work.ran_above_if_some_refused))
        if work.held_above:
            note += _NOT_ASKED
    if work.after_point:
        note += _UNSURE.format(calls=_listed(work.after_point))
    return ToolsRan(work.point, note + _SAME)


def unfinished_turn_note(stored: StoredTranscript, following: int, *, summarised: bool) -> str | None:
    """The note for the next message after a turn that ended without an answer (failed for
    good, timed out, its CLI crashed) and that the next message leaves out: the tool calls it
    made in the last ``following`` lines, that the agent must not repeat unawares (a mail sent
    twice); None when it made none. ``summarised``: the next message resumes at a compaction's
    summary written in the middle of that turn, not before its message."""
    work = _tool_work(stored, following)
    if work is None:
        return None
    note = _UNFINISHED_START + (_SUMMARISED if summarised else _LEFT_OUT) + _TOOLS_HAD_RUN
    if work.answered:
        note += _UNFINISHED_RAN.format(calls=_listed(work.answered))
    if work.unanswered:
        note += _UNSURE.format(calls=_listed(work.unanswered))
    return note + _UNFINISHED_END


def carried_notes(content: object) -> str | None:
    """The notes of this file a stored prompt (its content) was sent with, if any. A retry that
    failed too before it ran a tool resumes at the same place and needs the same notes; the
    next message after it leaves the prompt out and needs its note about an earlier turn."""
    paragraphs = prompt_text(content).split("\n\n")
    notes = []
    for paragraph in paragraphs[:-1]:  # the last is the message
        if not paragraph.startswith(_CARRIED):
            break
        notes.append(paragraph)
    return "\n\n".join(notes) or None


def ran_tools_before(notes: str | None) -> bool:
    """Whether ``notes`` (see ``carried_notes``) say a failed attempt of the message ran tools."""
    return notes is not None and notes.startswith(_NOTE_START)


def earlier_unfinished_notes(content: object) -> str | None:
    """The notes about earlier unfinished turns a stored prompt was sent with."""
    notes = carried_notes(content)
    kept = [note for note in (notes or "").split("\n\n") if note.startswith(_UNFINISHED_START)]
    return "\n\n".join(kept) or None


def _tool_work(stored: StoredTranscript, following: int) -> _ToolWork | None:
    point: str | None = None
    calls: dict[str, str] = {}  # id: the call as the notes name it (not one refused)
    answered: set[str] = set()
    after_point: list[str] = []  # ids
    refused = held = False  # a refused call was seen, one held for approval
    ran_above_if_some_refused: list[str] | None = None
    held_above = False
    for entry in _tool_entries(stored, following):
        content = entry["message"].get("content")
        blocks = [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []
        if entry["type"] == "assistant":
            for block in blocks:
                if block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                    calls[block["id"]] = _shown(block)
                    after_point.append(block["id"])
            continue
        results = [block.get("tool_use_id") for block in blocks if block.get("type") == "tool_result"]
        if not results:
            continue
        refused_id = refused_call(entry)
        if refused_id is not None:  # never ran: as if never made
            calls.pop(refused_id, None)
            refused = True
            held = held or held_for_approval(entry)
        else:
            answered.update(call for call in results if isinstance(call, str))
        # Not at a refusal that follows the point alone (the retry resumes before it), but at
        # one written after the result of a call made with it: it completes their message.
        made_since = any(call in calls for call in after_point)
        if made_since and answered.issuperset(calls) and isinstance(entry.get("uuid"), str):
            point, after_point = entry["uuid"], []
            ran_above_if_some_refused = list(calls.values()) if refused else None
            held_above = held
    if not calls:
        return None
    return _ToolWork(
        point,
        ran_above_if_some_refused,
        held_above,
        [calls[call] for call in after_point if call in calls],
        [shown for call, shown in calls.items() if call in answered],
        [shown for call, shown in calls.items() if call not in answered],
    )


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


def _listed(calls: list[str]) -> str:
    return "; ".join(calls)


def _shown(call: dict[str, Any]) -> str:
    """A call as a note names it: its tool and the start of its input, both as JSON, so that
    nothing the model wrote into them (an injected prompt's words) reads as the note's own."""
    shown = json.dumps(call.get("input"), ensure_ascii=False)
    if len(shown) > _CALL_SHOWN:
        shown = shown[:_CALL_SHOWN] + "…"
    return f"{json.dumps(call.get('name'), ensure_ascii=False)} {shown}"
