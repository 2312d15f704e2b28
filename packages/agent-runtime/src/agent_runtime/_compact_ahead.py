"""Having the CLI compact a conversation before a turn, while the memory still loads it all.

The CLI compacts only when the model's context fills; a transcript can outgrow the memory long
before (a photo the agent read costs ~1.5k tokens but megabytes of base64), and a chat it never
compacted is refused past its limit (``_history_limit``). From WARN_SHARE of that limit on
(``compact_first``), the turn first runs the CLI's own ``/compact`` on the session, resumed as
the turn is (one model call: the summary), then the user's message on the compacted session:
the CLI loads only the summary, what it kept, and what follows from then on.

Paid as the turn's, as a compaction the CLI makes mid-turn is: what the model proxy metered
goes into the turn's spend, and the turn's cost cap is what is left of it. A compaction that
fails (the model's error, its share of the turn's time run out) leaves the message to run on
the history as it was, which still loads: logged ``turn.compact_ahead_failed``. Its turn's
retry does not compact again: the user pays one failed summary per message, and the next
message tries again. A stop or a lost lease (``CompactedAhead.end``) ends the turn there
instead, before its message's CLI starts (see ``_turn``). The ``/compact`` command names its
turn with a mark of its own (``_prompt_marks``), no turn's prompt, so the resume point of a
retry is found as before (what the CLI wrote for it lies before the turn's own prompt). Its
CLI run starts no MCP server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from session_core import StoredTranscript, get_logger

from ._prompt_marks import command_turn_id, conversation_back, decode_entry
from ._turn_state import RunEnd, RunOutcome, SdkRun
from ._usage_meter import MeteredSpend

log = get_logger("agent_runtime._turn")

COMPACT_COMMAND = "/compact"
# Conversation lines looked at back from the transcript's end for a failed /compact: its own are
# three (a caveat, the command, its outcome), a few more after failed attempts in a row.
_MOST_WALKED = 16
# The most of the turn's time left the compaction may take: a summary that stalls must leave
# the message its time to run on the history as it was.
COMPACT_SHARE_OF_TIME = 0.5


class CompactedAhead(NamedTuple):
    """What a compaction ahead of a turn did: ``compacted`` (the CLI wrote its summary), what
    its model calls cost (``metered``: the turn's spend begins with it), how its run ended
    (``end``: a stop or a lost lease ends the turn there), the mirror batches the store missed
    and did not catch up on (``store_behind``), where the turn resumes (``resume_at``; None:
    at the transcript's end), and the resumed SDK session's running total after it, as its
    CLI reported it (``session_total_usd``; None: it reported none)."""

    compacted: bool
    metered: MeteredSpend
    end: RunEnd = RunEnd.FINISHED
    store_behind: int = 0
    resume_at: str | None = None
    session_total_usd: float | None = None

    def turn(self, run: SdkRun) -> SdkRun:
        """The turn's ``run`` after this compaction: resumed where it says, with what is left
        of its cost cap once the compaction is paid (as for one the CLI makes mid-run), and
        the running total after it, which a turn stopped before its run's result leaves: the
        next turn's CLI counts on from it (from the total before, it charged the summary again)."""
        cap = run.max_cost_usd
        left = None if cap is None else max(cap - self.metered.cost_usd, 0.0)
        return replace(
            run, resume_at=self.resume_at, max_cost_usd=left, summarised_total_usd=self.session_total_usd
        )

    def used_up(self, cap: float | None) -> bool:
        """Whether this compaction cost all of the turn's ``cap``: the turn stops at it, as one
        whose compaction the CLI made mid-run does (and the CLI refuses a budget of nothing)."""
        return cap is not None and self.metered.cost_usd >= cap


# The step that runs one SDK run on the turn's workspace and lease, until ``deadline``.
RunUntil = Callable[[SdkRun, RunOutcome, float | None], Awaitable[RunEnd]]


async def compact_ahead(
    turn: SdkRun, run_until: RunUntil, deadline: float | None, *, transcript: Path, stored_bytes: int
) -> CompactedAhead:
    """Run ``/compact`` on the session ``turn`` resumes (at its end: the local ``transcript``,
    ``stored_bytes`` long), within a share of the time to ``deadline`` and under the turn's
    cost cap."""
    compaction = SdkRun(
        COMPACT_COMMAND,
        turn.turn_id,
        turn.resume,
        turn.resume_at,  # None, or where the conversation ended before a failed compaction
        turn.resumed_total_usd,
        turn.max_cost_usd,
        command=True,
    )
    outcome = RunOutcome()
    now = time.perf_counter()
    own_deadline = None if deadline is None else now + (deadline - now) * COMPACT_SHARE_OF_TIME
    end = await run_until(compaction, outcome, own_deadline)
    behind = max(outcome.mirror_errors - outcome.caught_up_after, 0)
    failed = _why_failed(end, outcome)
    if failed is None:
        log.info("turn.compacted_ahead", cost_usd=outcome.metered.cost_usd)
        return CompactedAhead(
            True, outcome.metered, end, store_behind=behind, session_total_usd=_running_total(turn, outcome)
        )
    log.warning(
        "turn.compact_ahead_failed",
        why=failed,
        api_status=getattr(outcome.result, "api_error_status", None),
        cost_usd=outcome.metered.cost_usd,
    )
    # What the CLI wrote of the failed command (its error, which names the model's endpoint)
    # is no part of the chat: the turn resumes where the history ended before it.
    resume_at = await asyncio.to_thread(_entry_before, transcript, stored_bytes)
    return CompactedAhead(
        False, outcome.metered, end, store_behind=behind, resume_at=resume_at or turn.resume_at
    )


class FailedCompaction(NamedTuple):
    """Compactions ahead that failed at the conversation's end: the entry before them
    (``resume_at``) and the turns that ran them (``turns``; one sent before the /compact
    command named its turn is in none)."""

    resume_at: str
    turns: frozenset[int]


def before_failed_compaction(stored: StoredTranscript) -> FailedCompaction | None:
    """Where the conversation ended before a compaction ahead that failed and is the
    transcript's last word (its turn ended before the message ran: its run failed first, or
    the summary cost the turn's cap), and the turns that ran it: the entry the /compact
    command's own entries follow, to resume at so that the agent never reads the command or
    its error, and whose retry must not compact again. None: it ends otherwise."""
    parent: str | None = None
    turns: set[int] = set()
    for entry in conversation_back(stored, _MOST_WALKED):
        if parent is None and not _failed_compaction(entry):
            return None  # the conversation's last entry is no failed /compact
        if not _failed_compaction(entry) and not _compact_command(entry):
            return None if parent is None else FailedCompaction(parent, frozenset(turns))
        turn = command_turn_id(entry.get("uuid"))
        if turn is not None:
            turns.add(turn)
        parent = entry.get("parentUuid")
    return None


def _failed_compaction(entry: dict[str, Any]) -> bool:
    """The outcome the CLI writes of a /compact that failed (its error is the entry's text)."""
    run, outcome = entry.get("commandRun"), entry.get("commandOutcome")
    return (
        entry.get("subtype") == "local_command"
        and isinstance(run, dict)
        and run.get("command") == "compact"
        and isinstance(outcome, dict)
        and outcome.get("kind") == "failed"
    )


def _compact_command(entry: dict[str, Any]) -> bool:
    """The user entries the CLI writes for the /compact command: the caveat that a local
    command follows, and the command itself (the runtime's; a user's text never runs one)."""
    message = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if entry.get("type") != "user" or not isinstance(content, str):
        return False
    caveat = entry.get("isMeta") is True and content.startswith("<local-command-caveat>")
    return caveat or content.startswith(f"<command-name>{COMPACT_COMMAND}</command-name>")


def _entry_before(transcript: Path, stored_bytes: int) -> str | None:
    """The entry the conversation ended with before what the CLI wrote past ``stored_bytes``:
    the parent of the first entry it wrote there (None: it wrote none)."""
    with transcript.open("rb") as file:
        file.seek(stored_bytes)
        written = file.read()
    for line in written.splitlines():
        entry = decode_entry(line)
        if "parentUuid" in entry:  # of the conversation, not the CLI's own bookkeeping
            parent = entry.get("parentUuid") or entry.get("logicalParentUuid")
            return parent if isinstance(parent, str) else None
    return None


def _running_total(turn: SdkRun, outcome: RunOutcome) -> float | None:
    """The resumed session's running total the compaction's CLI reported (None: none, or of
    another session)."""
    result = outcome.result
    if result is None or result.session_id != turn.resume or result.total_cost_usd is None:
        return None
    return float(result.total_cost_usd)


def _why_failed(end: RunEnd, outcome: RunOutcome) -> str | None:
    if outcome.summarised:  # the CLI wrote its boundary and summary: compacted, whatever followed
        return None
    if end is not RunEnd.FINISHED:
        return str(end.value)  # timed out, stopped, lease lost, over the disk limit
    if outcome.failure is not None:
        return type(outcome.failure).__name__
    result = outcome.result
    if result is None or result.is_error:
        return "model_error" if result is None else str(result.subtype)
    return "not_compacted"  # the CLI's command ended without a summary (its model call failed)
