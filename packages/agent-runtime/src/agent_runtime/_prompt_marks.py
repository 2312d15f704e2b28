"""Prompts that name their turn: every prompt the runtime sends carries its turn id in its
uuid (``xxxxxxxx-ab07-4b07-8xxx-<turn id, 12 hex>``), so a restored transcript tells which
turn its last prompt belonged to (and whether that turn was recorded) without a second store.
The format is what transcripts stored before this file hold: it must not change."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, NamedTuple

import msgspec
from session_core import StoredTranscript

# Groups 2-3 of the uuid of every prompt the runtime sends; the last group is the turn id.
_PROMPT_MARK = "ab07-4b07"
_PROMPT_MARK_BYTES = _PROMPT_MARK.encode()
# The same for a command of the CLI's own the runtime sends for a turn (``/compact``, see
# ``_compact_ahead``): it names its turn, but is none of the turn's prompts.
_COMMAND_MARK = "ab07-4c07"
_entry_decoder = msgspec.json.Decoder(dict[str, Any])
# The user message of a compaction's summary has this key (true), as the CLI writes it.
_COMPACT_SUMMARY = b'"isCompactSummary"'
_ASSISTANT = b'"assistant"'
_PARENT = b'"parentUuid"'
# Lines looked at back from a prompt for the compaction ahead of it (the /compact command's own
# are a handful; the CLI's attachments to the prompt a few more).
_MOST_WALKED = 64
# An entry's own "uuid" with the mark (not "parentUuid"/"leafUuid", which name another entry).
_MARKED_UUID = re.compile(rb'"uuid"\s*:\s*"[0-9a-f]{8}-' + _PROMPT_MARK_BYTES)


def find_last_prompt(stored: StoredTranscript) -> tuple[int, dict[str, Any], int] | None:
    """The last prompt the runtime sent in a transcript: (lines after it, entry, update id)."""
    return next(_prompts_newest_first(stored), None)


def find_first_attempt(stored: StoredTranscript, turn_id: int) -> tuple[int, dict[str, Any]] | None:
    """The prompt of the first attempt at turn ``turn_id`` that the transcript ends with (the
    prompts after it are its retries): (lines after it, entry); None when the last prompt is
    another turn's."""
    first = None
    for following, entry, prompt_turn in _prompts_newest_first(stored):
        if prompt_turn != turn_id:
            break
        first = following, entry
    return first


def _prompts_newest_first(stored: StoredTranscript) -> Iterator[tuple[int, dict[str, Any], int]]:
    """The runtime's prompts in a transcript, newest first: (lines after it, entry, update id).

    Only lines whose own uuid has the prompts' mark are decoded (replies name their prompt's
    uuid too, as ``parentUuid``: a long history has many such lines)."""
    for line, following in stored.lines_containing(_PROMPT_MARK_BYTES):
        if not _MARKED_UUID.search(line):
            continue
        entry = decode_entry(line)
        turn_id = prompt_turn_id(entry.get("uuid")) if entry.get("type") == "user" else None
        if turn_id is not None:
            yield following, entry, turn_id


class CompactSummary(NamedTuple):
    uuid: str
    following: int  # lines after it
    # Written from a conversation that held the prompt: the model had replied to it (a tool
    # call) when the CLI compacted. Compacted before the turn's first call, the summary is of
    # what came before the prompt, which the CLI sends after it as it is.
    covers_prompt: bool


class ResumePoint(NamedTuple):
    """Where a transcript resumes with a prompt and all after it left out."""

    uuid: str | None  # the entry resumed at; None: nothing came before (a new conversation)
    after: int  # lines from the end that what the left-out turn did is read from
    summary: CompactSummary | None  # the CLI compacted the history after the prompt


def resume_point_before(stored: StoredTranscript, following: int, prompt: dict[str, Any]) -> ResumePoint:
    """Where to resume leaving out ``prompt`` (``following`` lines from the end) and all after
    it: at the compaction summary after it if the CLI compacted the history there (it finds
    nothing before its boundary, so the prompt's parent is gone), else at the prompt's parent,
    the end of the conversation it was sent to (not the entry before it in the file, which may
    be an earlier failed attempt)."""
    summary = compact_summary_after(stored, following)
    if summary is not None:
        return ResumePoint(summary.uuid, summary.following, summary)
    parent = prompt.get("parentUuid")
    return ResumePoint(parent if isinstance(parent, str) else None, following, None)


def compact_summary_after(stored: StoredTranscript, following: int) -> CompactSummary | None:
    """The newest compaction summary among the last ``following`` lines (those after a
    prompt): the CLI compacted the history there (it keeps nothing from before its boundary),
    or None."""
    for line, after in stored.lines_containing(_COMPACT_SUMMARY):
        if after >= following:
            return None  # before the prompt
        entry = decode_entry(line)
        if entry.get("isCompactSummary") is True and isinstance(entry.get("uuid"), str):
            return CompactSummary(str(entry["uuid"]), after, _model_replied(stored, following, after))
    return None


class SummaryAhead(NamedTuple):
    """A compaction's summary the runtime had the CLI write ahead of a turn (see
    ``_compact_ahead``): ``turn`` is the turn whose ``/compact`` command made it (None: one
    sent before commands named their turn)."""

    turn: int | None


def compacted_ahead_of(
    stored: StoredTranscript, following: int, prompt: dict[str, Any]
) -> SummaryAhead | None:
    """The compaction's summary the conversation ``prompt`` (``following`` lines from the end)
    was sent to ends in, when the runtime had the CLI write it ahead of a turn: back from the
    prompt, only what the CLI wrote for its ``/compact`` command (no model reply, no other
    prompt) lies before that summary. None: it ends otherwise."""
    parent = prompt.get("parentUuid")
    if not isinstance(parent, str):
        return None
    return _summary_first(conversation_back(stored, _MOST_WALKED, from_uuid=parent, following=following))


def ends_at_compaction(stored: StoredTranscript) -> bool:
    """Whether the conversation ends in a compaction's summary (and what the CLI wrote for its
    ``/compact`` command): one the runtime had the CLI make ahead of a turn that then ended
    before its message ran (see ``_compact_ahead``)."""
    return _summary_first(conversation_back(stored, _MOST_WALKED)) is not None


def _summary_first(entries: Iterator[dict[str, Any]]) -> SummaryAhead | None:
    """The compaction's summary that comes, back along the conversation's ``entries``, before
    any model reply or prompt (only what the CLI wrote for its ``/compact`` command may, which
    names the turn that sent it), or None."""
    turn = None
    for entry in entries:
        if entry.get("isCompactSummary") is True:
            return SummaryAhead(turn)
        if entry.get("type") == "assistant" or prompt_turn_id(entry.get("uuid")) is not None:
            return None
        turn = command_turn_id(entry.get("uuid")) if turn is None else turn
    return None


def conversation_back(
    stored: StoredTranscript, most: int, *, from_uuid: str | None = None, following: int = -1
) -> Iterator[dict[str, Any]]:
    """The conversation's entries back along their parents, newest first: from the entry
    ``from_uuid`` (None: the conversation's last) among the lines before the one ``following``
    lines from the end, until an entry with no parent or ``most`` lines that name one were
    looked at (the CLI's bookkeeping and other branches' entries are passed over)."""
    wanted = from_uuid
    before = (line for line, after in stored.lines_containing(_PARENT) if after > following)
    for looked, line in enumerate(before):
        if looked == most:
            return
        entry = decode_entry(line)
        if "parentUuid" not in entry or (wanted is not None and entry.get("uuid") != wanted):
            continue  # the CLI's bookkeeping, or another branch's
        yield entry
        wanted = entry.get("parentUuid")
        if not isinstance(wanted, str):
            return


def _model_replied(stored: StoredTranscript, following: int, summary_following: int) -> bool:
    """Whether a model reply lies between the prompt and the summary (``following`` and
    ``summary_following`` lines from the end)."""
    for line, after in stored.lines_containing(_ASSISTANT):
        if after >= following:
            return False
        if after > summary_following and decode_entry(line).get("type") == "assistant":
            return True
    return False


def decode_entry(line: bytes) -> dict[str, Any]:
    """A transcript line's entry ({} for a line that is not one)."""
    try:
        return _entry_decoder.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return {}  # not an entry the runtime wrote; the CLI judges the file itself


def prompt_text(content: object) -> str:
    """The text of a stored prompt's content: a string, or the CLI's blocks (the first text)."""
    if isinstance(content, list):
        texts = [block.get("text") for block in content if isinstance(block, dict) and "text" in block]
        content = texts[0] if texts else ""
    return content if isinstance(content, str) else ""


def prompt_uuid(turn_id: int) -> str:
    """A fresh uuid per attempt (the store de-duplicates by uuid) that names its turn."""
    return _marked_uuid(turn_id, _PROMPT_MARK)


def prompt_turn_id(entry_uuid: object) -> int | None:
    return _marked_turn_id(entry_uuid, _PROMPT_MARK)


def command_turn_id(entry_uuid: object) -> int | None:
    """The turn a command of the CLI's own was sent for (``prompt_stream``); None: none the
    runtime marked (sent before commands named their turn)."""
    return _marked_turn_id(entry_uuid, _COMMAND_MARK)


def _marked_uuid(turn_id: int, mark: str) -> str:
    random = uuid.uuid4().hex
    if not 0 <= turn_id < 1 << 48:
        return str(uuid.UUID(random))
    return f"{random[:8]}-{mark}-8{random[8:11]}-{turn_id:012x}"


def _marked_turn_id(entry_uuid: object, mark: str) -> int | None:
    parts = entry_uuid.split("-") if isinstance(entry_uuid, str) else []
    if len(parts) != 5 or f"{parts[1]}-{parts[2]}" != mark:
        return None
    try:
        return int(parts[4], 16)
    except ValueError:
        return None


async def prompt_stream(prompt: str, turn_id: int, *, command: bool = False) -> AsyncIterator[dict[str, Any]]:
    # A streamed user message may carry its own uuid (the CLI keeps it, a command's too); a
    # plain string prompt may not. A ``command`` of the CLI's own names its turn apart from the
    # turn's prompts: it is none of them.
    yield {
        "type": "user",
        "session_id": "",
        "message": {"role": "user", "content": prompt},
        "parent_tool_use_id": None,
        "uuid": _marked_uuid(turn_id, _COMMAND_MARK if command else _PROMPT_MARK),
    }
