"""Where a restored session resumes (``Restored``): before an unrecorded turn at the transcript's
end, which is left out (the model would read its message twice), or after the tools a failed
attempt of this very turn ran (none runs twice); and what the agent is told about either."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, NamedTuple

from session_core import RecordedTurn, SessionKey, StoredTranscript, get_logger

from ._collaborators import RuntimeRegistry
from ._compact_ahead import before_failed_compaction
from ._prompt_marks import (
    SummaryAhead,
    compacted_ahead_of,
    ends_at_compaction,
    find_first_attempt,
    find_last_prompt,
    prompt_text,
    resume_point_before,
)
from ._summarised_retry import SUMMARISED_RETRY_NOTE, carries_summarised_retry_note
from ._tools_ran import (
    carried_notes,
    earlier_unfinished_notes,
    ran_tools_before,
    tools_ran_after,
    unfinished_turn_note,
)

log = get_logger("agent_runtime._turn")


class Restored(NamedTuple):
    """Where a restored session resumes (None: at its end) and its transcript's bytes."""

    resume_at: str | None
    history_bytes: int
    # What the agent is told before the message: about the failed attempt of it that it
    # resumes after, or an earlier turn left out unfinished (see ``_summarised_retry`` and
    # ``_tools_ran``); None: nothing.
    note: str | None = None
    # A failed attempt of this very turn ran tools: their effects stand, whatever this one does.
    after_tools: bool = False
    # The turn left out began the transcript (a chat's first, see ``_unfinished_session``):
    # nothing is left to resume, a new conversation begins (told by ``note``).
    begin_anew: bool = False
    # The text of this turn's first failed attempt, kept above the resume point (its retry
    # resumes after its tools): what it told the agent, the agent knows.
    kept_prompt: str | None = None
    # Resumed at the summary of a compaction in a turn left out (unrecorded): the agent keeps
    # only that summary, so this turn's answer is the one recorded as summarised (for /status).
    at_summary: bool = False
    # What of the history the CLI loads (from its last compaction on); None: all of it, or
    # not looked for (the history is well inside the memory's limit either way).
    loaded_bytes: int | None = None
    # False: the history was not downloaded (past what the runtime keeps even compacted), so
    # what of it the CLI would load is unknown.
    read: bool = True
    # ``resume_at`` is where the conversation ended before a compaction ahead that failed
    # (see ``before_failed_compaction``) in an earlier turn: this one may compact ahead from
    # there. Not again for the turn whose attempt it was: one failed summary is paid per turn.
    compacts_again: bool = False
    # The session's subagent transcripts: kept by the runtime too, loaded by the CLI only
    # when it resumes that agent.
    subagent_bytes: int = 0


@dataclass(frozen=True)
class ResumePoints:
    """Finds where a turn resumes a restored session, from its transcript and the turns the
    ``registry`` recorded."""

    registry: RuntimeRegistry

    async def find(self, key: SessionKey, stored: StoredTranscript, turn_id: int) -> Restored:
        """Where turn ``turn_id`` resumes so that an unrecorded turn at the transcript's end (a
        failed or timed-out run) is left out: otherwise the model would read the user's message
        twice. Its retry (``turn_id`` itself) resumes after the tools the failed attempt ran
        instead, so that none runs twice; a later message is told which ran. The runtime's
        prompts carry their update id in their uuid (``prompt_uuid``); the last one is looked
        up in the registry. At None: resume it all."""
        found = find_last_prompt(stored)
        if found is None:
            return Restored(None, stored.size)
        following, entry, prompt_turn = found
        answered = await self._recorded_answer(key, prompt_turn)
        if answered is not None:
            # The last prompt's turn was recorded: resumed at the end, but before a compaction
            # ahead that failed there (a later turn's, which ended before its message ran; this
            # turn's own, paid already, when this is its retry: it runs on the history as it was).
            failed = before_failed_compaction(stored)
            if failed is not None:
                again = turn_id not in failed.turns
                if not again:
                    log.info("turn.compact_ahead_not_retried")
                return Restored(failed.resume_at, stored.size, compacts_again=again)
            # One that worked: this turn's answer is the first under its summary (for /status),
            # unless the turn that made it was recorded with it (stopped before its message ran).
            at_summary = ends_at_compaction(stored) and not await self._summarised_since(
                key, answered.recorded_at
            )
            return Restored(None, stored.size, at_summary=at_summary)
        if prompt_turn != turn_id:
            return await self._after_unfinished_turn(key, stored, prompt_turn)
        resume = resume_point_before(stored, following, entry)
        if resume.summary is not None:
            # The CLI compacted the history during that turn: what the turn did after the
            # summary is left out (but for the tools it ran, below).
            log.info(
                "turn.unrecorded_turn_left_out",
                turn_id=prompt_turn,
                after="compaction",
                summary_covers_it=resume.summary.covers_prompt,
            )
            note = SUMMARISED_RETRY_NOTE if resume.summary.covers_prompt else None
        else:
            log.info("turn.unrecorded_turn_left_out", turn_id=prompt_turn, dropped=following + 1)
            # A retry sent with a note that failed too (before any tool): resumed at the same
            # place, the next needs telling again.
            content = _content(entry)
            note = carried_notes(content)
            if note is None and carries_summarised_retry_note(content):
                note = SUMMARISED_RETRY_NOTE
        ran = tools_ran_after(stored, resume.after)
        point = resume.uuid if ran is None else ran.resume_at or resume.uuid
        first = find_first_attempt(stored, turn_id)
        kept = _kept_first_attempt(stored, first, point)
        # Compacted ahead of its first attempt (see ``_compact_ahead``): resumed after that summary.
        ahead = None if first is None else compacted_ahead_of(stored, *first)
        at_summary = resume.summary is not None or await self._first_under_summary(key, ahead)
        if ran is not None:  # tools ran for it: its retry resumes after them, not to run them again
            log.info("turn.retry_after_tools", turn_id=prompt_turn, resumed_after=ran.resume_at is not None)
            return _resumed_at(
                point, stored.size, ran.note, after_tools=True, kept_prompt=kept, at_summary=at_summary
            )
        return _resumed_at(
            point,
            stored.size,
            note,
            after_tools=ran_tools_before(note),
            kept_prompt=kept,
            at_summary=at_summary,
        )

    async def _after_unfinished_turn(
        self, key: SessionKey, stored: StoredTranscript, unfinished: int
    ) -> Restored:
        """Where a new message resumes after turn ``unfinished``, which ended without an answer
        and is left out with all its attempts, and the note that names the tools it ran."""
        start = find_first_attempt(stored, unfinished)
        assert start is not None  # the transcript ends with its prompt
        following, entry = start
        resume = resume_point_before(stored, following, entry)
        log.info(
            "turn.unrecorded_turn_left_out",
            turn_id=unfinished,
            after="compaction" if resume.summary is not None else None,
            dropped=resume.after + 1,
        )
        # A summary written after its first tool call covers its message and work until then:
        # the note says so, and names the calls made before it as well.
        summarised = resume.summary is not None and resume.summary.covers_prompt
        ran = unfinished_turn_note(stored, following, summarised=summarised)
        # Its first prompt may have carried a note about a turn before it: told again, as
        # that prompt is left out now.
        notes = [earlier_unfinished_notes(_content(entry)), ran]
        note = "\n\n".join(n for n in notes if n is not None) or None
        if note is not None:
            log.info("turn.told_unfinished_tools", turn_id=unfinished)
        ahead = compacted_ahead_of(stored, following, entry)
        at_summary = resume.summary is not None or await self._first_under_summary(key, ahead)
        return _resumed_at(resume.uuid, stored.size, note, at_summary=at_summary)

    async def _recorded_answer(self, key: SessionKey, turn_id: int) -> RecordedTurn | None:
        """Turn ``turn_id``'s answer if it was recorded as run: by this chat, or by the chat it
        was before it moved to a new id (its turn records stay there, its prompts are in this
        transcript). One stopped before it began never ran, whatever an earlier attempt wrote."""
        seen: set[str] = set()
        chat: SessionKey | None = key
        while chat is not None and chat.canonical not in seen:
            seen.add(chat.canonical)
            saved = await asyncio.to_thread(self.registry.get_turn_record, chat, turn_id)
            if saved is not None:
                return None if saved.result.stopped_before_start else saved
            record = await asyncio.to_thread(self.registry.get_session, chat)
            moved_from = None if record is None else record.moved_from
            chat = None if moved_from is None else SessionKey.parse(moved_from)
        return None

    async def _first_under_summary(self, key: SessionKey, summary: SummaryAhead | None) -> bool:
        """Whether the turn's answer is the first under the ``summary`` made ahead of the
        prompt it resumes after (for /status): not when the turn that made it was recorded with
        it (it stopped before its message ran), whatever turn's prompt follows it unanswered."""
        if summary is None:
            return False
        made_it = None if summary.turn is None else await self._recorded_answer(key, summary.turn)
        return made_it is None or not made_it.result.summarised

    async def _summarised_since(self, key: SessionKey, since: float) -> bool:
        """Whether an answer recorded after ``since`` was marked summarised: after the last
        prompt's turn, only a turn that ended at its compaction ahead, its message never run
        (the user stopped it), records one. Both times are the registry's clock as each answer
        was recorded, a turn apart under the chat's lease."""
        record = await asyncio.to_thread(self.registry.get_session, key)
        return record is not None and record.summarised_at is not None and record.summarised_at > since


def _resumed_at(
    point: str | None,
    size: int,
    note: str | None,
    *,
    after_tools: bool = False,
    kept_prompt: str | None = None,
    at_summary: bool = False,
) -> Restored:
    """Resumed at ``point``, the entry before an unrecorded turn left out; None: nothing came
    before it (it began the transcript), so a new conversation begins."""
    return Restored(
        point,
        size,
        note,
        after_tools,
        begin_anew=point is None,
        kept_prompt=kept_prompt,
        at_summary=at_summary and point is not None,
    )


def _kept_first_attempt(
    stored: StoredTranscript, first: tuple[int, dict[str, Any]] | None, point: str | None
) -> str | None:
    """The text of a turn's ``first`` attempt (``find_first_attempt``) when its retry resumes
    at ``point`` inside that attempt (after tools it ran), not before it, nor at a compaction's
    summary; past a summary only when that summary came before the attempt's first call (the
    CLI then keeps the prompt as it was after it): one written from the prompt may not have
    kept what it said. None otherwise."""
    if first is None or point is None:
        return None
    following, entry = first
    before = resume_point_before(stored, following, entry)
    summarised = before.summary is not None and before.summary.covers_prompt
    if summarised or point == before.uuid:
        return None
    return prompt_text(_content(entry))


def _content(entry: dict[str, Any]) -> object:
    message = entry.get("message")
    return message.get("content") if isinstance(message, dict) else None
