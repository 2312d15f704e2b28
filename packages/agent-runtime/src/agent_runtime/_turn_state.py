"""What one turn carries between its steps: the lease being renewed, the SDK run it starts, what
that run produced, how the run ended, and the arithmetic of its time budget and cost."""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from claude_agent_sdk import ResultMessage
from session_core import Lease, TurnResult, Usage, get_logger

from ._approval_gate import ApprovalGate
from ._cost import turn_cost_usd
from ._outbox_at_end import OutboxAtEnd
from ._turn_events import NoSink, TurnEventSink
from ._usage_meter import MeteredSpend

log = get_logger("agent_runtime._turn")

# Stop this long before the caller's deadline: killing the CLI, recording and answering.
DEADLINE_MARGIN_S = 3.0


class RunEnd(enum.Enum):
    """How an SDK run ended: it finished (well or not), its lease was lost, its time ran out,
    the session's files passed its disk limit, or the user stopped it."""

    FINISHED = "finished"
    LEASE_LOST = "lease_lost"
    TIMED_OUT = "timed_out"
    OVER_DISK_LIMIT = "over_disk_limit"
    STOPPED = "stopped"


@dataclass
class LeaseHolder:
    """The turn's lease as the renewer keeps it; ``lost`` once a renewal found it taken."""

    lease: Lease
    lost: bool = False
    lost_event: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class SdkRun:
    """What one SDK run is started with."""

    prompt: str
    turn_id: int
    resume: str | None
    resume_at: str | None  # resume_session_at: leave an unrecorded turn out
    resumed_total_usd: float = 0.0  # the resumed SDK session's running total so far
    max_cost_usd: float | None = None  # the SDK's max_budget_usd
    gate: ApprovalGate | None = None  # [I] the PreToolUse hook asking for approvals
    # A command of the CLI's own the runtime sends (``/compact``, see ``_compact_ahead``): not
    # the user's words, and not one of the turn's marked prompts (``_prompt_marks``).
    command: bool = False
    # After a compaction ahead (``_compact_ahead``): the resumed session's running total once
    # the summary was paid (None: unknown), which a stopped run leaves for the next turn to
    # count on from.
    summarised_total_usd: float | None = None


@dataclass
class RunOutcome:
    """What one SDK run produced, filled in as its messages arrive."""

    result: ResultMessage | None = None
    session_id: str | None = None
    texts: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    # The CLI's kind of the model call that failed the run (billing_error, rate_limit, ...).
    api_error: str | None = None
    mirror_errors: int = 0
    caught_up_after: int = 0
    spent: bool = False  # the model answered at least once (tokens were paid for)
    # The run began a new SDK session (it resumed none): only a saved answer names it.
    began_session: bool = False
    # A failed attempt this run resumed after ran tools.
    tools_ran_before: bool = False
    tool_calls: set[str] = field(default_factory=set)  # the ids of the calls the agent made
    # A call was refused because the store did not take the transcript before it (see
    # ``_save_before_tools``): the run ends as a storage failure.
    refused_unsaved: bool = False
    # The ids of the calls refused before they ran: those above, and any the CLI's transcript
    # records as refused (a hook's, the permission policy's: see ``_refused_calls``).
    refused_calls: set[str] = field(default_factory=set)
    # The tools the CLI said became available during the run: an MCP server that connected
    # after its startup wait brought them (see ``_mcp_tools_added``).
    tools_added: set[str] = field(default_factory=set)
    recorded: bool = False  # the answer is in the registry: a retry replays it
    # The registry names the session the run began, before its first tool call ran.
    session_kept: bool = False
    # The chat's stored conversation was gone (expired, or lost): the run began a new one.
    new_conversation: bool = False
    failed_cost_counted: float = 0.0  # what this run, unanswered, added to the chat's cost
    failure: Exception | None = None
    metered: MeteredSpend = field(default_factory=MeteredSpend)  # what the model proxy saw
    sink: TurnEventSink = field(default_factory=NoSink)  # where the turn's events go (progress)
    # The outbox as the run ended, before its processes were killed (see _outbox_at_end).
    outbox_at_end: OutboxAtEnd | None = None
    # The caller's deadline, not the runtime's own time, bounds the run (a timeout is its).
    callers_deadline: bool = False
    # By how much (seconds) the caller's deadline comes before the runtime's own time, when it does.
    callers_short_by_s: float | None = None
    # The CLI compacted the history during the run (its compact_boundary message): the
    # recorded answer says so, for /status.
    summarised: bool = False

    @property
    def tools_ran(self) -> bool:
        """The agent ran a tool in this run (a refused call did not run), or in a failed
        attempt this run resumed after."""
        return self.tools_ran_before or bool(self.tool_calls - self.refused_calls)

    def refuse_unsaved(self, call_id: str | None) -> None:
        self.refused_unsaved = True
        if call_id is not None:
            self.refused_calls.add(call_id)

    @property
    def may_retry(self) -> bool:
        """Whether running this update again cannot pay twice for one answer. A run stopped
        at a call the store could not take first has no answer, and that call never ran: it
        is tried again, as any store outage."""
        return self.recorded or not self.spent or self.refused_unsaved


# The proxy's price of a run may differ from the CLI's by rounding; beyond this it saw more or
# fewer calls than the CLI says.
_METERED_SLACK = 0.02


def billed_cost(cli_cost: float, cli_usage: Usage, metered: MeteredSpend) -> tuple[float, Usage]:
    """What a run that reported its cost is billed: the CLI's figure, or the model proxy's count
    of the run's calls where they part. The proxy sees every call the run paid for: more than
    the CLI counted is a tool calling the model itself; less is a figure a tool wrote into the
    CLI's output (where no Landlock stops it), which would settle into every budget. An answer
    the proxy could not read leaves the CLI's figure standing.

    The tokens are the proxy's whenever it read every answer: the CLI's count leaves out its
    subagents' calls and a compaction's summary, which its cost includes, so the usage line
    under an answer gave fewer tokens than the price it named."""
    if metered.cost_usd > cli_cost * (1 + _METERED_SLACK) + 1e-9:
        log.warning("turn.cost_above_cli_figure", cli_usd=cli_cost, metered_usd=metered.cost_usd)
        return metered.cost_usd, metered.usage
    if metered.calls and not metered.unread and cli_cost > metered.cost_usd * (1 + _METERED_SLACK) + 1e-9:
        log.warning("turn.cli_cost_above_metered", cli_usd=cli_cost, metered_usd=metered.cost_usd)
        return metered.cost_usd, metered.usage
    return cli_cost, metered.usage if metered.calls and not metered.unread else cli_usage


def with_spend(answer: TurnResult, outcome: RunOutcome) -> TurnResult:
    """A failed run's answer with what the run spent by the model proxy's count (for the
    budgets), unless the run had a result (then its own figure counts) or the answer is a replay."""
    if outcome.result is not None or answer.replayed or not outcome.metered.calls:
        return answer
    return msgspec.structs.replace(answer, cost_usd=outcome.metered.cost_usd, usage=outcome.metered.usage)


def time_budget(time_budget_s: float | None, deadline_epoch_ms: int | None) -> float | None:
    """Seconds this turn may take: the runtime's own budget (at least 1 s), and no longer than
    the caller's deadline minus a margin for stopping, recording and answering."""
    budgets = [] if time_budget_s is None else [max(time_budget_s, 1.0)]
    if deadline_epoch_ms is not None:
        budgets.append(_callers_time_s(deadline_epoch_ms))
    return min(budgets) if budgets else None


def _callers_time_s(deadline_epoch_ms: int) -> float:
    # The seconds left before the caller's deadline, less the margin for stopping, recording
    # and answering: one reckoning for the budget and for telling whose time ran out.
    return deadline_epoch_ms / 1000 - time.time() - DEADLINE_MARGIN_S


def callers_short_by_s(time_budget_s: float | None, deadline_epoch_ms: int | None) -> float | None:
    """How many seconds before the runtime's own budget the caller's deadline ends the turn
    (see ``callers_deadline_first``); None when it does not, or the runtime has no budget of its
    own to compare with. The caller tells by it whether a wait of its own before the turn cut it."""
    if deadline_epoch_ms is None or time_budget_s is None:
        return None
    short_by = max(time_budget_s, 1.0) - _callers_time_s(deadline_epoch_ms)
    return short_by if short_by > 0 else None


def callers_deadline_first(time_budget_s: float | None, deadline_epoch_ms: int | None) -> bool:
    """Whether the caller's deadline ends the turn before the runtime's own budget does (see
    ``time_budget``): the caller spent part of its invocation before it."""
    if deadline_epoch_ms is None:
        return False
    return time_budget_s is None or _callers_time_s(deadline_epoch_ms) < max(time_budget_s, 1.0)


def run_cost(run: SdkRun, result: ResultMessage) -> float:
    """What this run cost: the CLI's running total less what the resumed session had spent."""
    return turn_cost_usd(
        result.total_cost_usd,
        session_id=result.session_id,
        resumed_id=run.resume,
        resumed_total_usd=run.resumed_total_usd,
    )


def usage_of(raw: dict[str, Any] | None) -> Usage:
    """The token counts of a result's ``usage`` (missing or odd values count 0)."""
    raw = raw or {}

    def num(name: str) -> int:
        value = raw.get(name)
        return int(value) if isinstance(value, int | float) else 0

    return Usage(
        input_tokens=num("input_tokens"),
        output_tokens=num("output_tokens"),
        cache_read_input_tokens=num("cache_read_input_tokens"),
        cache_creation_input_tokens=num("cache_creation_input_tokens"),
    )
