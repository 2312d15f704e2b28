"""One turn: lease → (replay | restore → Claude Agent SDK → persist) → exactly-once record."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from claude_agent_sdk import (
    project_key_for_directory,
)
from session_core import (
    KEY_REFUSED,
    TURN_VERSION,
    Approval,
    Approvals,
    ErrorKind,
    ErrorReason,
    HistorySize,
    InvalidSessionKeyError,
    LeaseClock,
    LeaseHeldError,
    LeaseLostError,
    LiveTurns,
    ProcessesRemainError,
    SessionCoreError,
    SessionKey,
    SessionRecord,
    StorageError,
    StoredTranscript,
    SystemClock,
    TranscriptTooLargeError,
    TurnLedger,
    TurnRequest,
    TurnResult,
    UndeliveredFiles,
    bind_correlation,
    boot_ticks,
    get_logger,
    transcripts_read_as_of,
    well_formed,
)

from ._approval_turn import ApprovalPlan, ApprovalSteps
from ._attachments import restore_attachments, stage_attachments
from ._claude_config import ClaudeConfig
from ._collaborators import RuntimeRegistry, S3Objects, TranscriptStoreVerbs
from ._compact_ahead import CompactedAhead, RunUntil, compact_ahead
from ._config_report import config_error_result, report_config_error
from ._day_note import with_day_note, without_day_note
from ._disk_watch import disk_limit_passed
from ._environment import (
    ModelAccess,
)
from ._errors import AgentRuntimeError, AttachmentError, UntrustedCliOutputError
from ._expired_history import HistoryAge, message_arrived_at, with_expired_history_note
from ._held_mirror import HeldMirror
from ._history_limit import compact_first, history_limit_bytes, history_size, memory_fix
from ._late_note import with_late_note
from ._live_progress import PUBLISH_INTERVAL_S, LiveProgress
from ._loaded_history import bytes_the_cli_loads, loaded_after_compaction
from ._mcp_rest import McpServersAtRest
from ._mcp_secrets import McpSecretProxies
from ._model_refusal import context_full, operator_refusal, request_refused, request_too_large
from ._model_unanswered import unanswered
from ._outbox import stage_outbox
from ._outbox_at_end import OutboxAtEnd, look_at_outbox
from ._owned_trees import tree_size
from ._process_sweep import (
    effective_scope,
    end_environment,
    find_turn_processes,
    reap_zombie_children,
    sweep_turn_processes,
)
from ._restore import TranscriptRestorer, is_session_id, transcript_path
from ._resume_point import Restored, ResumePoints
from ._save_before_tools import SaveBeforeTools
from ._sdk_run import SdkRunSteps
from ._settings import RuntimeSettings
from ._stopped_turn import early_answer, stopped_result
from ._timed_store import TimedStore
from ._turn_events import TurnStopped
from ._turn_state import (
    LeaseHolder,
    RunEnd,
    RunOutcome,
    SdkRun,
    billed_cost,
    callers_deadline_first,
    callers_short_by_s,
    run_cost,
    time_budget,
    usage_of,
    with_spend,
)
from ._undelivered_note import undelivered_files_note
from ._unfinished_session import keep_session_before_tools, keep_unfinished_session
from ._usage_meter import MeteredSpend
from ._workspace import SessionWorkspace, clear_outbox, forget_conversation, session_workspace

log = get_logger(__name__)

# The CLI's results for a run a limit stopped, and the reason the user is told.
_LIMIT_REACHED: dict[str, ErrorReason] = {
    "error_max_turns": "max_turns",
    "error_max_budget_usd": "max_budget",
}

# Without a deadline, keep retrying to record a paid answer this long.
_RECORD_RETRY_S = 60.0
_RECORD_ATTEMPT_S = 1.0  # what one more save attempt needs at least


class PhaseTimes(msgspec.Struct, kw_only=True):
    """Seconds spent per phase of the last turn (for logs and bench/runtime_turn.py)."""

    restore_s: float = 0.0
    sdk_s: float = 0.0
    persist_s: float = 0.0
    total_s: float = 0.0
    store_loads: int = 0
    store_appends: int = 0


def transcript_project(key: SessionKey, record: SessionRecord | None = None) -> str:
    """The project key under which a session's transcripts are stored: the session key itself,
    not the SDK's key derived from the working directory, so a session resumes whatever
    SESSIONS_ROOT (or `agentbot dev --state-dir`) a container uses. A chat that moved to a new
    id (a group upgraded to a supergroup) goes on in the old chat's project (its ``record``)."""
    if record is not None and record.transcripts_of is not None:
        return record.transcripts_of
    return key.canonical


@dataclass
class Runtime(SdkRunSteps, ApprovalSteps):
    """Everything a turn needs, built once per container (see ``handler.build_runtime``)."""

    settings: RuntimeSettings
    config: ClaudeConfig
    store: TranscriptStoreVerbs
    registry: RuntimeRegistry
    s3: S3Objects
    model: ModelAccess
    cli_path: str
    owner: str = field(default_factory=lambda: f"runtime-{uuid.uuid4().hex[:12]}")
    last_phases: PhaseTimes = field(default_factory=PhaseTimes)
    stderr_tail: list[str] = field(default_factory=list)
    # Every descendant of this process started after this moment belongs to some turn.
    started_ticks: int = field(default_factory=boot_ticks)
    # Why no further turn may run here (a process outlived its turn's sweep); None: none.
    ended_for: str | None = None
    # Proxies that add HTTP MCP servers' secret headers (None: no server has any).
    mcp_proxies: McpSecretProxies | None = None
    # Stamps and paces the lease (tests pass one they move themselves); the registry's clock.
    clock: LeaseClock = field(default_factory=SystemClock)
    # The sessions' live items: progress for the channel, stop requests from the user.
    live_turns: LiveTurns | None = None
    # [I] The sessions' pending tool approvals and the chats' grants.
    approvals: Approvals | None = None
    progress_interval_s: float = PUBLISH_INTERVAL_S
    ledger: TurnLedger = field(init=False)
    resume_points: ResumePoints = field(init=False)
    _timed_store: TimedStore | None = None
    _restorer: TranscriptRestorer | None = None
    _model_refusals_reported: set[str] = field(default_factory=set)
    # MCP servers that did not connect at a recent turn's start, left out for a while.
    mcp_at_rest: McpServersAtRest = field(init=False)

    def __post_init__(self) -> None:
        self.mcp_at_rest = McpServersAtRest(self.clock)
        self.ledger = TurnLedger(self.registry, owner=self.owner)
        self.resume_points = ResumePoints(self.registry)
        self._timed_store = TimedStore(self.store)
        self._restorer = TranscriptRestorer(self.store)

    # -- public -------------------------------------------------------------------------
    def run_turn(
        self, request: TurnRequest, *, time_budget_s: float | None = None, request_id: str | None = None
    ) -> TurnResult:
        """Run (or replay) turn ``request.turn_id`` of its session; never raises for
        turn-level failures: they come back as a TurnResult with ``error_kind`` set."""
        return asyncio.run(self.run_turn_async(request, time_budget_s=time_budget_s, request_id=request_id))

    async def run_turn_async(
        self, request: TurnRequest, *, time_budget_s: float | None = None, request_id: str | None = None
    ) -> TurnResult:
        """Async form of :meth:`run_turn`."""
        if self.ended_for is not None:  # before anything of this turn reaches the disk
            end_environment(self.ended_for)
        started = time.perf_counter()
        bind_correlation(turn_id=request.turn_id, session_key=request.session_key, request_id=request_id)
        outcome = RunOutcome()
        try:
            result = await self._turn(request, started, time_budget_s, outcome)
        except (SessionCoreError, AgentRuntimeError) as exc:
            # A storage outage, a missing secret...: a clean message for the user, a log for the operator.
            log.error(
                "turn.failed", error_type=type(exc).__name__, detail=str(exc)[:300], spent=outcome.spent
            )
            retryable = exc.retryable and outcome.may_retry
            result = _error(request, "internal", retryable=retryable, started=started)
        except Exception as exc:  # a bug must not raise out of the handler (SQS would pay again)
            log.exception("turn.crashed", error_type=type(exc).__name__, spent=outcome.spent)
            result = _error(request, "internal", retryable=outcome.may_retry, started=started)
        else:
            if self.ended_for is not None:
                # A process of this turn escaped its sweep: the runtime ends before it answers,
                # so that Lambda hands no further invoke to this environment. The answer is
                # recorded: the invoke's retry, in another environment, returns it without
                # running again.
                end_environment(self.ended_for)
        if not result.ok and not result.replayed and outcome.tools_ran:
            # What its tools did stands: the user is told (see ``_tools_ran``).
            result = msgspec.structs.replace(result, tools_ran=True)
        return result

    async def _turn(
        self, request: TurnRequest, started: float, time_budget_s: float | None, outcome: RunOutcome
    ) -> TurnResult:
        try:
            key = SessionKey.parse(request.session_key)
        except InvalidSessionKeyError as exc:
            log.warning("turn.bad_session_key", field=exc.field)
            return _error(request, "bad_request", retryable=False, started=started)
        budget = time_budget(time_budget_s, request.deadline_epoch_ms)
        if budget is not None and budget <= 0:
            # The caller stops waiting before anything could be done: spend nothing, but an
            # answer saved already is still the answer.
            saved = await asyncio.to_thread(self.ledger.saved, key, request.turn_id)
            if saved is not None:
                log.info("turn.replayed")
                return saved
            log.warning("turn.deadline_passed", deadline_epoch_ms=request.deadline_epoch_ms)
            return _error(request, "model_error", retryable=True, started=started, reason="timeout")
        deadline = None if budget is None else started + budget
        outcome.callers_deadline = callers_deadline_first(time_budget_s, request.deadline_epoch_ms)
        outcome.callers_short_by_s = callers_short_by_s(time_budget_s, request.deadline_epoch_ms)
        try:
            start = await asyncio.to_thread(
                self.ledger.start, key, request.turn_id, lease_s=self.settings.lease_duration_s
            )
        except LeaseHeldError:
            log.info("turn.busy")
            return _error(request, "busy", retryable=True, started=started)
        if start.lease is None:
            assert start.replay is not None
            log.info("turn.replayed")
            return start.replay
        holder = LeaseHolder(start.lease)
        try:
            # The history as it stood when the message was sent (see _expired_history.py).
            with transcripts_read_as_of(message_arrived_at(request, self.clock())):
                result = await self._leased_turn(key, request, holder, started, deadline, outcome)
            await keep_unfinished_session(self.registry, holder, outcome)
            return result
        finally:
            with contextlib.suppress(SessionCoreError):
                await asyncio.to_thread(self.ledger.release, holder.lease)

    # -- the leased part ------------------------------------------------------------------
    async def _leased_turn(
        self,
        key: SessionKey,
        request: TurnRequest,
        holder: LeaseHolder,
        started: float,
        deadline: float | None,
        outcome: RunOutcome,
    ) -> TurnResult:
        """The turn under its lease: what to resume, the SDK run, then its answer, saved once."""
        resume, resumed_total, project, undelivered, age, last_answer = await self._session_to_resume(
            key, request
        )
        expired = age == "expired"
        outcome.new_conversation = expired
        store = self._scoped_store(project)
        # Renewed until the result is recorded; a lost lease stops the run at once.
        renewer = asyncio.create_task(self._keep_lease(holder))
        # Progress out, stop requests in (see _live_progress.py).
        live = await self._begin_live(key, request, outcome)
        watcher = asyncio.create_task(live.watch()) if live is not None else None
        try:
            if live is not None and live.stop_requested.is_set():
                return await self._stopped_before_start(
                    key, request, holder, live, resume, resumed_total, started, deadline
                )
            with session_workspace(
                self.settings.sessions_root,
                key,
                self.config,
                disk_limit_mb=self.settings.session_disk_limit_mb,
                alone=effective_scope(self.settings.process_sweep_scope) == "uid",
                new_conversation=resume is None,
            ) as workspace:
                clear_outbox(workspace)
                try:
                    prompt = await stage_attachments(
                        self.s3, self.settings.sessions_bucket, key, request, workspace
                    )
                except AttachmentError as exc:
                    log.warning("turn.attachment_failed", reason=exc.reason)
                    return _error(
                        request,
                        "bad_request",
                        retryable=exc.retryable,
                        started=started,
                        reason="attachment",
                    )
                # Measured as the turn starts: a retry of a late message says its own age.
                prompt = with_late_note(
                    prompt, sent_at_epoch_s=request.sent_at_epoch_s, now_epoch_s=self.clock()
                )
                prompt = with_day_note(
                    prompt,
                    sent_at_epoch_s=message_arrived_at(request, self.clock()),
                    last_answer_epoch_s=last_answer,
                )
                plan = await self._approval_plan(key, request, prompt, resume)
                if plan.nothing_to_do:
                    return _nothing_to_resume(request, started)
                # Only a call the user allowed needs its question's files; a declined one's
                # would land beside (or over) the files of a new message that declined it.
                if plan.brings_files and plan.answering is not None:
                    await restore_attachments(
                        self.s3, self.settings.sessions_bucket, key, plan.answering.attachments, workspace
                    )
                sdk_started = time.perf_counter()
                restored = (
                    Restored(None, 0)
                    if resume is None
                    else await self._restore(key, project, resume, workspace, request.turn_id)
                )
                if restored is None:  # nothing stored: the CLI cannot resume it
                    resume, resumed_total, restored = None, 0.0, Restored(None, 0)
                    outcome.new_conversation = True
                    # Prepared to go on with it: nothing of it carries over, as after /new.
                    forget_conversation(workspace)
                    plan.prompt = without_day_note(plan.prompt)
                    # Expired since the message was sent, storage may have let it (or a part)
                    # go already: it expired, and the agent is told so. Else it was lost.
                    expired = age == "expired_since_sent"
                    log.warning("turn.history_gone", expired=expired)
                if expired:
                    plan.prompt = with_expired_history_note(plan.prompt, self.settings.retention_days)
                if restored.begin_anew:
                    resume, resumed_total = None, 0.0
                outcome.began_session = resume is None
                # After the notes a retry carries (``carried_notes``). A conversation begun
                # afresh (history expired, a group that moved on) has no answer they belong to.
                # A retry that keeps its failed attempt's prompt above was told already.
                lost = None if undelivered is None else undelivered_files_note(undelivered)
                if lost is not None and resume is not None and lost not in (restored.kept_prompt or ""):
                    plan.prompt = f"{lost}\n\n{plan.prompt}"
                if restored.note is not None:
                    plan.prompt = f"{restored.note}\n\n{plan.prompt}"
                outcome.tools_ran_before = restored.after_tools
                outcome.summarised = restored.at_summary
                resume_at, history_bytes = restored.resume_at, restored.history_bytes
                kept_bytes = history_bytes + restored.subagent_bytes  # all the runtime keeps
                loaded = restored.loaded_bytes
                history = history_size(
                    kept_bytes, self.settings.memory_mb, loaded_bytes=loaded, read=restored.read
                )
                if history is not None and history.too_large:
                    return _history_too_large(
                        request, history, started, plan.answering, memory_mb=self.settings.memory_mb
                    )
                run = SdkRun(
                    plan.prompt,
                    request.turn_id,
                    resume,
                    resume_at,
                    resumed_total,
                    request.max_cost_usd,
                    gate=plan.gate,
                )
                # this message's files, and those of the turn an approval answers brought back
                user_files_bytes = int(await asyncio.to_thread(tree_size, workspace.attachments))

                def run_until(
                    step: SdkRun, step_outcome: RunOutcome, until: float | None
                ) -> Awaitable[RunEnd]:
                    """One SDK run on this turn's workspace and lease, until ``until``."""
                    return self._run_until_stopped(
                        step,
                        workspace,
                        step_outcome,
                        holder,
                        until,
                        live,
                        history_bytes=kept_bytes,
                        user_files_bytes=user_files_bytes,
                    )

                resumes_at_end = resume is not None and (resume_at is None or restored.compacts_again)
                end: RunEnd | None = None
                # Not before an allowed call the agent is to make again exactly as asked, which
                # a summary may not keep: the next message compacts.
                if plan.answering is None and compact_first(
                    history, self.settings.memory_mb, loaded_bytes=loaded, resumes_at_end=resumes_at_end
                ):
                    assert resume is not None  # only a resumed session is compacted
                    path = transcript_path(
                        workspace.config_dir, project_key_for_directory(workspace.cwd), resume
                    )
                    ahead, history = await self._compact_first(
                        run,
                        run_until,
                        outcome,
                        deadline,
                        path,
                        history=history,
                        history_bytes=history_bytes,
                        subagent_bytes=restored.subagent_bytes,
                    )
                    # The user's stop wins over the cap: they asked for the turn to end.
                    end = await _ended_at_compaction(ahead.end, holder, live)
                    if end is None and ahead.used_up(run.max_cost_usd):
                        return await self._cap_used_up_ahead(key, request, ahead, outcome, started)
                    run = ahead.turn(run)
                if end is None:
                    end = await run_until(run, outcome, deadline)
                await self._remember_local_copy(key, project, end, outcome, workspace)
                written = "" if live is None else live.text
                written = written or "\n\n".join(outcome.texts)
                stop = early_answer(end, live, written, outcome)
                if stop is not None:
                    return await self._stopped_answer(
                        key,
                        request,
                        run,
                        written,
                        workspace,
                        holder,
                        outcome,
                        started,
                        deadline,
                        plan,
                        reason=None if stop == "user" else stop,
                    )
                if end is not RunEnd.FINISHED:
                    return await self._stopped_run(key, request, end, outcome, started)
                sdk_s = time.perf_counter() - sdk_started
                turn = self._paid_answer(request, run, outcome, started)
                if turn is not None:
                    files, unsent, more = await stage_outbox(
                        self.s3,
                        self.settings.sessions_bucket,
                        key,
                        request.turn_id,
                        workspace,
                        outcome.outbox_at_end,
                    )
                    turn = msgspec.structs.replace(
                        turn, files=files, files_not_sent=unsent, more_files_not_sent=more
                    )
                    turn = await self._with_approval(key, request, turn, plan)
                if turn is not None:
                    # Tokens were paid for this answer: record it (cost included) before
                    # anything else can fail, so a retry replays it instead of paying again.
                    persist_started = time.perf_counter()
                    answer, outcome.recorded = await self._record(
                        request, holder, turn, started, deadline, new_conversation=outcome.new_conversation
                    )
                    await self._approval_recorded(key, plan, answer)
                    persist_s = time.perf_counter() - persist_started
                    if turn.stopped and answer.ok and not outcome.recorded:
                        # Stopped by a limit: its note says the next message follows its
                        # steps, which an unrecorded turn's does not. It fails as before.
                        turn = None
                failed = await self._failed_run(
                    key, request, outcome, answered=turn is not None, started=started
                )
                if failed is not None:
                    return failed
            if turn is None:
                return await self._unpaid_outcome(key, request, run, holder, outcome, started)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            if watcher is not None and live is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                await live.end()
        self._report_done(store, turn, answer, started=started, sdk_s=sdk_s, persist_s=persist_s)
        return answer if history is None else msgspec.structs.replace(answer, history=history)

    async def _session_to_resume(
        self, key: SessionKey, request: TurnRequest
    ) -> tuple[str | None, float, str, UndeliveredFiles | None, HistoryAge, float | None]:
        """The SDK session this turn continues (None: a fresh one), its running total so far,
        the project its transcripts are kept under, the files of the last answer that did
        not reach the user (the agent is told), whether the chat's conversation expired
        (the chat was quiet for SessionTtlDays; the agent is told) when the message was sent,
        or only since, and when the conversation it continues was last written (None: none)."""
        if request.new_session:
            await asyncio.to_thread(self.registry.start_new_session, key)
        record = await asyncio.to_thread(self.registry.get_session, key)
        resume = None if record is None else record.sdk_session_id
        if resume is not None and not is_session_id(resume):
            # Recorded before session ids were checked: it names no file, so nothing resumes.
            log.warning("turn.stored_session_id_refused", session_id=str(resume)[:80])
            resume = None
        # Judged by the TTL in force, not by whether the history still reads: one written under
        # a longer TTL the operator lowered since still does (for now: S3's lifecycle may be
        # deleting its older objects), and /status already told the chat it expired.
        expired = (
            resume is not None
            and record is not None
            and record.history_expired(
                message_arrived_at(request, self.clock()), self.settings.retention_days
            )
        )
        if expired:
            log.warning("turn.history_gone", expired=True)
            resume = None
        age: HistoryAge = "expired" if expired else "live"
        now = self.clock()
        if (
            resume is not None
            and record is not None
            and record.history_expired(now, self.settings.retention_days)
        ):
            age = "expired_since_sent"
        total = 0.0 if record is None or resume is None else record.sdk_session_cost_usd
        undelivered = None if record is None else record.undelivered_files
        last_answer = None if record is None or resume is None else record.updated_at
        return resume, total, transcript_project(key, record), undelivered, age, last_answer

    def _scoped_store(self, project: str) -> TimedStore:
        store = self._timed_store
        assert store is not None
        store.reset()
        store.scope = project
        return store

    async def _stopped_run(
        self, key: SessionKey, request: TurnRequest, end: RunEnd, outcome: RunOutcome, started: float
    ) -> TurnResult:
        """The answer to a run stopped before it finished: its lease was lost, its time ran out,
        or its files passed the disk limit."""
        await self._count_killed_run(key, outcome)
        if end is RunEnd.LEASE_LOST:
            return with_spend(await self._lease_lost(key, request, started), outcome)
        if end is RunEnd.OVER_DISK_LIMIT:  # run again, it would fill the disk again
            answer = _error(request, "model_error", retryable=False, started=started, reason="disk_limit")
            return with_spend(answer, outcome)
        # A long task started again three times costs three times: tell the user, unless
        # nothing was spent yet. Whose time it was tells the operator which setting to look at.
        timed_out_by = "caller" if outcome.callers_deadline else "runtime"
        log.warning("turn.timeout", spent=outcome.spent, timed_out_by=timed_out_by)
        failed = _error(
            request, "model_error", retryable=not outcome.spent, started=started, reason="timeout"
        )
        short_by = outcome.callers_short_by_s if outcome.callers_deadline else None
        timed_out = msgspec.structs.replace(
            failed,
            timed_out_by=timed_out_by,
            caller_short_by_s=None if short_by is None else round(short_by, 1),
        )
        return with_spend(timed_out, outcome)

    async def _failed_run(
        self, key: SessionKey, request: TurnRequest, outcome: RunOutcome, *, answered: bool, started: float
    ) -> TurnResult | None:
        """The answer to a run whose SDK call raised; None when it did not, or when it had
        answered first (that answer, already saved, stands)."""
        failure = outcome.failure
        if failure is None:
            return None
        if answered:
            log.warning("turn.failed_after_answer", error_type=type(failure).__name__)
            return None
        if isinstance(failure, UntrustedCliOutputError):
            # Whatever else it said, the run paid for the calls the proxy saw: no tool makes a
            # turn free by writing into the CLI's output.
            log.error("turn.untrusted_cli_output", what=failure.what[:200])
            await self._count_killed_run(key, outcome)
            answer = _error(request, "internal", retryable=False, started=started)
            return msgspec.structs.replace(
                answer, cost_usd=outcome.metered.cost_usd, usage=outcome.metered.usage
            )
        if isinstance(failure, AgentRuntimeError | SessionCoreError):
            raise failure  # ours: classified once, in run_turn_async
        self._log_sdk_failure(outcome, kept_text=False)  # ProcessError/CLIConnectionError/...
        # A run that already paid for tokens is not bought a second time.
        await self._count_killed_run(key, outcome)
        return with_spend(_error(request, "internal", retryable=outcome.may_retry, started=started), outcome)

    def _log_sdk_failure(self, outcome: RunOutcome, *, kept_text: bool) -> None:
        log.error(
            "turn.sdk_failed",
            error_type=type(outcome.failure).__name__,
            stderr=self.stderr_tail[-5:],
            spent=outcome.spent,
            kept_text=kept_text,
        )

    def _report_done(
        self,
        store: TimedStore,
        turn: TurnResult,
        answer: TurnResult,
        *,
        started: float,
        sdk_s: float,
        persist_s: float,
    ) -> None:
        self.last_phases = PhaseTimes(
            restore_s=store.load_s,
            sdk_s=sdk_s - store.load_s,
            persist_s=persist_s + store.append_s,
            total_s=time.perf_counter() - started,
            store_loads=store.loads,
            store_appends=store.appends,
        )
        log.info(
            "turn.done",
            num_turns=turn.num_turns,
            cost_usd=turn.cost_usd,
            restore_s=round(store.load_s, 3),
            sdk_s=round(sdk_s, 3),
            persist_s=round(persist_s, 3),
            replayed=answer.replayed,
            error_kind=answer.error_kind,
        )
        if not answer.replayed and turn.num_turns and not store.appends:
            # The CLI mirrors what it writes to its transcript; it wrote nothing (its config
            # dir made unwritable by a tool, the disk full): the answer stands, but the next
            # turn of this chat will not know it.
            log.error("turn.history_not_kept", fix="the session's config dir must stay writable")

    def _paid_answer(
        self, request: TurnRequest, run: SdkRun, outcome: RunOutcome, started: float
    ) -> TurnResult | None:
        """The TurnResult of a run that ended with a successful result, or stopped by the
        agent's step limit or the turn's cost cap after it wrote something (what it wrote is
        its answer, marked stopped: the user saw it grow), and whose transcript the store
        holds; None when there is no answer to record."""
        result = outcome.result
        if result is None:
            return None
        limit = _LIMIT_REACHED.get(result.subtype)
        if limit is not None:
            text = "\n\n".join(outcome.texts).strip()  # an error result's own text is no answer
            if not text:
                return None  # fails as before (see _unrecorded_answer)
        elif result.is_error or result.subtype != "success":
            return None
        else:
            text = "\n\n".join(outcome.answers or outcome.texts).strip()
        if outcome.mirror_errors > outcome.caught_up_after or outcome.refused_unsaved:
            # not done until the store caught up; a run that ended at a call refused unsaved
            # is not done at all (see _unrecorded_answer)
            return None
        # the CLI's usage is this run's
        cost, usage = billed_cost(run_cost(run, result), usage_of(result.usage), outcome.metered)
        return TurnResult(
            version=TURN_VERSION,
            session_key=request.session_key,
            turn_id=request.turn_id,
            stopped=limit is not None,
            stop_reason=limit,
            text=well_formed(text),
            session_id=result.session_id,
            cost_usd=cost,
            session_cost_usd=float(result.total_cost_usd or 0.0),
            usage=usage,
            num_turns=result.num_turns,
            duration_ms=int((time.perf_counter() - started) * 1000),
            summarised=outcome.summarised,
        )

    async def _unpaid_outcome(
        self,
        key: SessionKey,
        request: TurnRequest,
        run: SdkRun,
        holder: LeaseHolder,
        outcome: RunOutcome,
        started: float,
    ) -> TurnResult:
        """The answer to a finished run that left nothing to record; what it cost (known from
        an error result) is counted in the chat's cost and returned for the budgets."""
        result = outcome.result
        cost = (
            0.0 if result is None else billed_cost(run_cost(run, result), usage_of(None), outcome.metered)[0]
        )
        same_session = result is not None and result.session_id == run.resume
        total = float(result.total_cost_usd or 0.0) if result is not None and same_session else None
        await self._count_failed_spend(key, outcome, cost, total)
        answer = await self._unrecorded_answer(key, request, holder, outcome, started)
        return msgspec.structs.replace(answer, cost_usd=cost) if cost > 0 and not answer.replayed else answer

    async def _unrecorded_answer(
        self, key: SessionKey, request: TurnRequest, holder: LeaseHolder, outcome: RunOutcome, started: float
    ) -> TurnResult:
        result = outcome.result
        limit = None if result is None else _LIMIT_REACHED.get(result.subtype)
        if result is not None and limit is not None:
            log.warning("turn.stopped_by_limit", subtype=result.subtype, num_turns=result.num_turns)
            return _error(request, "model_error", retryable=False, started=started, reason=limit)
        status = getattr(result, "api_error_status", None)
        refusal = operator_refusal(status, outcome.api_error, self.settings, self.config)
        if refusal is not None:
            # Every later turn would fail the same way: the operator hears once per container
            # and per problem, the user that the bot is misconfigured. A key refused while SSM
            # refuses its rotated value to the role is told as that already, not as a key to
            # replace (the operator just did).
            told = status in KEY_REFUSED and self.model.key_unreadable()
            if not told and str(refusal) not in self._model_refusals_reported:
                self._model_refusals_reported.add(str(refusal))
                report_config_error(refusal, tenant=self.settings.tenant)
            return config_error_result(request, started=started)
        if context_full(result, outcome.api_error):
            # Every later message resumes the same conversation: the user must start a new one.
            log.warning("turn.context_full", api_status=status)
            return _error(request, "bad_request", retryable=False, started=started, reason="context_full")
        if request_too_large(status):
            # The user's big file, not the operator's setup: told to them, with no alarm; the
            # operator's log says how large the refused request was (the proxy measured it).
            log.warning("turn.request_too_large", request_bytes=outcome.metered.too_large_bytes)
            return _error(
                request, "bad_request", retryable=False, started=started, reason="request_too_large"
            )
        if request_refused(outcome.api_error):
            log.warning("turn.model_refused_request", api_status=status)
            return _error(request, "model_error", retryable=False, started=started, reason="model_refused")
        if outcome.refused_unsaved:  # it stopped at a call the store could not take first
            return await self._store_behind(key, request, holder, outcome, started)
        if result is None or result.is_error or result.subtype != "success":
            log.warning(
                "turn.model_error",
                subtype=getattr(result, "subtype", None),
                api_status=getattr(result, "api_error_status", None),
            )
            return unanswered(
                _error(request, "model_error", retryable=True, started=started),
                outcome.metered,
                tenant=self.settings.tenant,
            )
        return await self._store_behind(key, request, holder, outcome, started)

    async def _store_behind(
        self, key: SessionKey, request: TurnRequest, holder: LeaseHolder, outcome: RunOutcome, started: float
    ) -> TurnResult:
        """The answer to a run whose transcript the store could not take: not done
        (ARCHITECTURE.md); the queue retries it, as any storage failure."""
        if holder.lost:
            return await self._lease_lost(key, request, started)
        log.error("turn.store_behind", mirror_errors=outcome.mirror_errors, refused=outcome.refused_unsaved)
        return _error(request, "internal", retryable=True, started=started)

    async def _count_failed_spend(
        self, key: SessionKey, outcome: RunOutcome, cost_usd: float, session_total: float | None
    ) -> None:
        """A run that ended without an answer still paid for its tokens: add them to the chat's
        cost (an error result's own figure, or the model proxy's count of a killed run)."""
        if cost_usd <= 0:
            return
        try:
            # Only a run that resumed the recorded session keeps it in use: one that began anew
            # after it expired must not bring it back for the next message.
            await asyncio.to_thread(
                self.registry.add_failed_turn_cost,
                key,
                cost_usd,
                session_cost_usd=session_total,
                continued_session=not outcome.began_session,
            )
        except SessionCoreError as exc:
            log.warning("turn.failed_cost_not_counted", error_type=type(exc).__name__, cost_usd=cost_usd)
        else:
            outcome.failed_cost_counted += cost_usd
            log.info("turn.failed_cost_counted", cost_usd=cost_usd)

    async def _count_killed_run(self, key: SessionKey, outcome: RunOutcome) -> None:
        """A run that ended without a result (killed at the deadline, lease lost, CLI crashed)
        paid for the calls the model proxy saw: count them in the chat's cost."""
        if outcome.result is None and outcome.metered.calls:
            spend = outcome.metered
            log.info("turn.killed_run_metered", calls=spend.calls, cost_usd=spend.cost_usd)
            await self._count_failed_spend(key, outcome, outcome.metered.cost_usd, None)

    async def _run_until_stopped(
        self,
        run: SdkRun,
        workspace: SessionWorkspace,
        outcome: RunOutcome,
        holder: LeaseHolder,
        deadline: float | None,
        live: LiveProgress | None = None,
        *,
        history_bytes: int = 0,
        user_files_bytes: int = 0,
    ) -> RunEnd:
        """Run the SDK until it finishes, the lease is lost, the time budget ends, the session's
        files pass SESSION_DISK_LIMIT_MB (on top of the ``history_bytes`` of transcript the
        turn resumed and the ``user_files_bytes`` of files the user sent) or the user stops
        it; a stopped run's CLI and tools are killed."""
        # Nothing a previous turn started may watch this one (normally a no-op: see below).
        self._sweep_processes(before_run=True)
        saver = self._save_before_tools(holder, outcome)
        sdk = asyncio.create_task(self._run_sdk(run, workspace, outcome, saver))
        lost = asyncio.create_task(holder.lost_event.wait())
        limit_mb = self.settings.session_disk_limit_mb
        # The history the turn resumes is the chat's, bounded by the memory's limit (refused as
        # history_too_large past it), not its tools' doing: counted, a transcript past the cap
        # stopped every later turn of the chat before it began.
        # So are the files the user sent (up to 10 of 20 MB each): counted, a PDF larger than
        # the cap stopped its turn before it began, the user told the bot's files grew too large.
        budget = limit_mb * 1024 * 1024 + history_bytes + user_files_bytes
        scope, since = self.settings.process_sweep_scope, self.started_ticks
        disk = asyncio.create_task(
            disk_limit_passed(
                workspace.root, budget, turn_processes=lambda: find_turn_processes(scope, since)
            )
        )
        # a stop request from the user (never set without a live item)
        stop = asyncio.create_task(live.stop_requested.wait() if live is not None else asyncio.Event().wait())
        try:
            timeout = None if deadline is None else max(deadline - time.perf_counter(), 0.0)
            done, _ = await asyncio.wait(
                {sdk, lost, stop, disk}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
            stop.cancel()
            disk.cancel()
            # While its tools still run: which outbox files one of them is still writing.
            outcome.outbox_at_end = self._look_at_outbox(workspace)
            # Before any result leaves: no process of this turn survives it, and the model
            # key it was given is dead.
            killed = self._sweep_processes(before_run=False)
            # after what a compaction ahead of this run paid, if one did (see _compact_first)
            outcome.metered = self.model.end_turn().after(outcome.metered)
            if self.mcp_proxies is not None:
                self.mcp_proxies.end_turn()
        if sdk in done:
            reap_zombie_children(self.started_ticks)
            return RunEnd.FINISHED
        sdk.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(sdk, timeout=15)
        if not holder.lost:  # what the stopped CLI wrote is kept; nothing after a lost lease
            await saver.held.send()
        reap_zombie_children(self.started_ticks)
        log.info("turn.cli_stopped", processes_killed=killed)
        if holder.lost:
            return RunEnd.LEASE_LOST
        if live is not None and live.stop_requested.is_set():
            live.emit(TurnStopped())
            return RunEnd.STOPPED
        if disk in done:
            size = disk.result()
            log.warning(
                "turn.over_disk_limit",
                size_mb=-1 if size == float("inf") else round(size / 2**20),
                limit_mb=limit_mb,
                setting="SESSION_DISK_LIMIT_MB",
            )
            return RunEnd.OVER_DISK_LIMIT
        return RunEnd.TIMED_OUT

    async def _compact_first(
        self,
        run: SdkRun,
        run_until: RunUntil,
        outcome: RunOutcome,
        deadline: float | None,
        transcript: Path,
        *,
        history: HistorySize | None,
        history_bytes: int,
        subagent_bytes: int,
    ) -> tuple[CompactedAhead, HistorySize | None]:
        """Have the CLI compact the conversation before the turn's ``run`` (see
        ``_compact_ahead``): what it did (``turn`` gives the run to start then; see
        ``_cap_used_up_ahead`` for one that cost the turn's whole cap), and the history the
        run resumes (``transcript``: its file, ``history_bytes`` long; beside it
        ``subagent_bytes`` of subagent transcripts)."""
        ahead = await compact_ahead(
            run, run_until, deadline, transcript=transcript, stored_bytes=history_bytes
        )
        outcome.metered = ahead.metered  # the turn's run adds its own calls to it
        # A batch the store missed and could not catch up on: the turn's run replays it all.
        outcome.mirror_errors += ahead.store_behind
        if not ahead.compacted:
            return ahead, history
        outcome.summarised = True  # whether the turn then runs its message or ends here
        size, loaded = await asyncio.to_thread(loaded_after_compaction, transcript)
        return ahead, history_size(size + subagent_bytes, self.settings.memory_mb, loaded_bytes=loaded)

    async def _cap_used_up_ahead(
        self,
        key: SessionKey,
        request: TurnRequest,
        ahead: CompactedAhead,
        outcome: RunOutcome,
        started: float,
    ) -> TurnResult:
        """The answer to a turn whose compaction ahead (``ahead``) cost its whole cap
        (MaxTurnCostUsd): it stops there, as at a compaction the CLI makes mid-run, with the
        summary paid once (counted in the chat's cost, and in the session's running total the
        next turn's CLI counts on from) and kept for the next message; its message is not run."""
        log.warning("turn.stopped_by_limit", subtype="error_max_budget_usd", by="compaction_ahead")
        await self._count_failed_spend(key, outcome, outcome.metered.cost_usd, ahead.session_total_usd)
        capped = _error(request, "model_error", retryable=False, started=started, reason="max_budget")
        return with_spend(capped, outcome)

    def _save_before_tools(self, holder: LeaseHolder, outcome: RunOutcome) -> SaveBeforeTools:
        """The run's store and the hook that sends it what the CLI wrote before each tool call."""
        store = self._timed_store
        assert store is not None

        def store_behind() -> None:
            outcome.mirror_errors += 1

        return SaveBeforeTools(
            HeldMirror(
                store,
                on_failed_send=store_behind,
                on_refused=outcome.refused_calls.add,
                on_tools_added=outcome.tools_added.update,
            ),
            holder,
            name_session=lambda: keep_session_before_tools(self.registry, holder, outcome),
            refused=outcome.refuse_unsaved,
        )

    async def _begin_live(
        self, key: SessionKey, request: TurnRequest, outcome: RunOutcome
    ) -> LiveProgress | None:
        """The turn's live progress (None without a live-turns table or when it cannot be
        written: the turn runs all the same, unwatched and unstoppable)."""
        if self.live_turns is None:
            return None
        live = LiveProgress(self.live_turns, key, request.turn_id, interval_s=self.progress_interval_s)
        try:
            await live.begin()
        except SessionCoreError as exc:
            log.warning("turn.live_begin_failed", error_type=type(exc).__name__)
            return None
        outcome.sink = live
        return live

    async def _stopped_answer(
        self,
        key: SessionKey,
        request: TurnRequest,
        run: SdkRun,
        written: str,
        workspace: SessionWorkspace,
        holder: LeaseHolder,
        outcome: RunOutcome,
        started: float,
        deadline: float | None,
        plan: ApprovalPlan,
        *,
        reason: ErrorReason | None,
    ) -> TurnResult:
        """The answer to a run the user stopped, or that ended early (``reason``: its time ran
        out, its CLI died) after it wrote something or finished a file: what was written so far
        (``written``, maybe nothing), recorded like any answer (its metered cost counted), so a
        retry replays it and the next message resumes after it (the CLI's history holds the
        steps the run finished, not a text the model was still writing), with the files the
        agent finished in its outbox (one a tool was still writing is named, not sent). A run
        whose transcript the store could not take is not recorded (the next turn resumes before
        it); its cost is counted all the same. A call the user allowed that the run had not
        made yet is declined: it must not run with the next message."""
        answering = plan.answering
        allowed_call = (
            answering.approval_id
            if answering is not None and answering.state == "decided" and answering.choice != "deny"
            else None
        )
        stopped_call = await self._decline_stopped_call(key, allowed_call)
        # A run stopped before the CLI named its session still continues the resumed one: its
        # running total stays (with a summary ahead of it paid), or the next turn would be
        # priced the whole session's history.
        continued = outcome.session_id in (None, run.resume)
        total = run.resumed_total_usd if run.summarised_total_usd is None else run.summarised_total_usd
        stopped_turn = stopped_result(
            request,
            text=written,
            session_id=outcome.session_id,
            resumed_total_usd=total if continued else 0.0,
            metered=outcome.metered,
            duration_ms=int((time.perf_counter() - started) * 1000),
            reason=reason,
        )
        stopped_turn = msgspec.structs.replace(stopped_turn, summarised=outcome.summarised)
        decided = stopped_call
        if decided is None and answering is not None and plan.gate.allowance_taken:
            # The allowed call ran before the stop: the asking message shows the decision now,
            # as after a normal end, not with the next message.
            decided = answering.outcome()
        if decided is not None:
            stopped_turn = msgspec.structs.replace(stopped_turn, approval_outcome=decided)
        await self._catch_up(outcome, project_key_for_directory(workspace.cwd), workspace)
        behind = outcome.mirror_errors > outcome.caught_up_after
        if behind and reason is not None:
            log.error("turn.store_behind", mirror_errors=outcome.mirror_errors, stopped=True)
            return await self._early_end_unrecorded(key, request, stopped_turn, outcome, started)
        # The files the agent finished before the stop go with what it wrote, as with any answer.
        files, unsent, more = await stage_outbox(
            self.s3, self.settings.sessions_bucket, key, request.turn_id, workspace, outcome.outbox_at_end
        )
        stopped_turn = msgspec.structs.replace(
            stopped_turn, files=files, files_not_sent=unsent, more_files_not_sent=more
        )
        if reason is not None and not files and not stopped_turn.text:
            # It ended early for a file, and none goes (changed after the end, too large):
            # nothing to show, so it fails as one that wrote nothing.
            return await self._early_end_unrecorded(key, request, stopped_turn, outcome, started)
        if behind:
            log.error("turn.store_behind", mirror_errors=outcome.mirror_errors, stopped=True)
            await self._count_killed_run(key, outcome)
            return stopped_turn
        answer, outcome.recorded = await self._record(
            request, holder, stopped_turn, started, deadline, new_conversation=outcome.new_conversation
        )
        if reason is not None and answer.ok and not outcome.recorded:
            return await self._early_end_unrecorded(key, request, stopped_turn, outcome, started)
        if outcome.recorded:
            await self._early_end_recorded(key, plan, answer)
        if reason == "crashed":
            self._log_sdk_failure(outcome, kept_text=True)
        log.info(
            "turn.stopped",
            cost_usd=stopped_turn.cost_usd,
            chars=len(stopped_turn.text),
            reason=reason,
        )
        return answer

    async def _early_end_unrecorded(
        self, key: SessionKey, request: TurnRequest, stopped: TurnResult, outcome: RunOutcome, started: float
    ) -> TurnResult:
        """A run that ended early (time limit, crashed CLI) whose answer (``stopped``) could not
        be recorded: the next message will not follow it, so it fails as one that wrote nothing
        (the note under its text would say what the next message follows). What it paid is
        counted; a call it declined is still said to be."""
        if stopped.stop_reason in ("timeout", "disk_limit"):
            end = RunEnd.TIMED_OUT if stopped.stop_reason == "timeout" else RunEnd.OVER_DISK_LIMIT
            failed = await self._stopped_run(key, request, end, outcome, started)
        else:
            crashed = await self._failed_run(key, request, outcome, answered=False, started=started)
            assert crashed is not None  # a crashed run has its failure
            failed = crashed
        return msgspec.structs.replace(failed, approval_outcome=stopped.approval_outcome)

    async def _stopped_before_start(
        self,
        key: SessionKey,
        request: TurnRequest,
        holder: LeaseHolder,
        live: LiveProgress,
        resume: str | None,
        resumed_total: float,
        started: float,
        deadline: float | None,
    ) -> TurnResult:
        """The answer to a turn the user stopped while it waited to start: nothing written, no
        model call, recorded like any stopped turn (a retry replays it). Its prompt never
        reached the CLI, so the next message resumes the session as it was before it (without
        the prompt of an earlier attempt that failed, see ``_resume_point``)."""
        live.emit(TurnStopped())
        stopped = stopped_result(
            request,
            text="",
            session_id=resume,
            resumed_total_usd=resumed_total,
            metered=MeteredSpend(),
            duration_ms=int((time.perf_counter() - started) * 1000),
        )
        stopped = msgspec.structs.replace(
            stopped,
            stopped_before_start=True,
            approval_outcome=await self._decline_stopped_call(key, request.resume_approval),
        )
        answer, _ = await self._record(request, holder, stopped, started, deadline)
        log.info("turn.stopped_before_start")
        return answer

    def _look_at_outbox(self, workspace: SessionWorkspace) -> OutboxAtEnd | None:
        try:
            pids = find_turn_processes(self.settings.process_sweep_scope, self.started_ticks)
            return look_at_outbox(workspace, pids)
        except Exception as exc:  # never in the way of the sweep that follows
            log.warning("turn.outbox_look_failed", error_type=type(exc).__name__)
            return None

    def _sweep_processes(self, *, before_run: bool) -> int:
        """Kill every process of the turn (see ``_process_sweep``). One that escapes before the
        run ends the runtime at once (this chat's files are in place); after the run, the turn
        records its answer first (see ``run_turn_async``)."""
        scope = self.settings.process_sweep_scope
        try:
            killed = sweep_turn_processes(scope=scope, since_ticks=self.started_ticks)
        except ProcessesRemainError as exc:
            if before_run:
                end_environment(str(exc))
            log.error("turn.processes_remain", error=str(exc))
            self.ended_for = str(exc)
            return 0
        if killed:
            log.info("turn.processes_killed", count=killed)
        return killed

    async def _restore(
        self, key: SessionKey, project: str, resume: str, workspace: SessionWorkspace, turn_id: int
    ) -> Restored | None:
        """Restore the transcript into the session's config dir (see ``_restore.py``) and
        return where turn ``turn_id`` resumes and the transcript's bytes (0 when not restored); None when
        the store has nothing of the session (it expired). Counted as the turn's restore
        time. A history past the memory's limit is not downloaded: its size comes back and
        the turn is refused."""
        store, restorer = self._timed_store, self._restorer
        assert store is not None and restorer is not None
        started = time.perf_counter()
        store_key = {"project_key": project, "session_id": resume}
        path = transcript_path(workspace.config_dir, project_key_for_directory(workspace.cwd), resume)
        try:
            try:
                restored = await restorer.restore(
                    key.canonical, store_key, path, max_bytes=history_limit_bytes(self.settings.memory_mb)
                )
            except TranscriptTooLargeError as exc:
                return Restored(None, exc.size, read=False)
            except Exception as exc:  # the SDK's own load reports a real outage; resume it all
                log.warning("turn.restore_failed", error_type=type(exc).__name__)
                return Restored(None, 0)
            if restored is None:
                return None
            if restored.local:
                store.restored_locally = resume
            log.info("turn.restored", local=restored.local, written=restored.written)
            point = await self.resume_points.find(key, restored.stored, turn_id)
            if not restored.local:  # the SDK decodes the whole history itself: all of it counts
                return point
            loaded = await asyncio.to_thread(self._loaded_bytes, restored.stored, restored.subagent_bytes)
            return point._replace(loaded_bytes=loaded, subagent_bytes=restored.subagent_bytes)
        finally:
            store.load_s += time.perf_counter() - started

    def _loaded_bytes(self, stored: StoredTranscript, subagent_bytes: int) -> int | None:
        """What of ``stored`` the CLI loads, looked for only where it matters: a history the
        memory could not load whole (a search of it all, ~100 MB, costs a warm turn time),
        its subagents' transcripts (``subagent_bytes``, which the runtime keeps) counted in."""
        if history_size(stored.size + subagent_bytes, self.settings.memory_mb) is None:
            # All of the transcript, none of theirs (None would count theirs as loaded too).
            return stored.size if subagent_bytes else None
        return bytes_the_cli_loads(stored)

    async def _remember_local_copy(
        self, key: SessionKey, project: str, end: RunEnd, outcome: RunOutcome, workspace: SessionWorkspace
    ) -> None:
        """After a clean run the transcript file (rewritten from the store) is what the next turn
        resumes from."""
        restorer = self._restorer
        assert restorer is not None
        caught_up = outcome.mirror_errors <= outcome.caught_up_after
        if (
            end is not RunEnd.FINISHED
            or outcome.failure is not None
            or not caught_up
            or not outcome.session_id
        ):
            restorer.forget(key.canonical)
            return
        store_key = {"project_key": project, "session_id": outcome.session_id}
        path = transcript_path(
            workspace.config_dir, project_key_for_directory(workspace.cwd), outcome.session_id
        )
        # reads (and may write) the whole file: off the event loop, where the lease renewer runs
        await asyncio.to_thread(restorer.remember, key.canonical, store_key, path)

    async def _lease_lost(self, key: SessionKey, request: TurnRequest, started: float) -> TurnResult:
        # Whoever took the lease may have answered this very update: that answer counts.
        saved = await asyncio.to_thread(self.ledger.saved, key, request.turn_id)
        if saved is not None:
            return saved
        log.error("turn.lease_lost_not_recorded")
        return _error(request, "internal", retryable=True, started=started)

    async def _record(
        self,
        request: TurnRequest,
        holder: LeaseHolder,
        turn: TurnResult,
        started: float,
        deadline: float | None,
        *,
        new_conversation: bool = False,
    ) -> tuple[TurnResult, bool]:
        """Record the paid answer exactly once, retrying storage failures with backoff while
        time remains; if another run of this update was recorded first, that result counts.
        ``new_conversation``: the run began a new conversation (its figures start again).
        A registry that stays down gets ``turn`` back unrecorded (delivered, not paid again).
        Also says whether the update's answer is now recorded."""
        give_up_at = deadline if deadline is not None else time.perf_counter() + _RECORD_RETRY_S
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                saved = await asyncio.to_thread(
                    self.ledger.save, holder.lease, turn, new_conversation=new_conversation
                )
                break
            except StorageError as exc:
                # DynamoDB refusing the item itself (over 400 KB) refuses it every time.
                refused = exc.error_code == "ValidationException"
                if refused or time.perf_counter() + delay + _RECORD_ATTEMPT_S > give_up_at:
                    # Running the model again would pay twice: the answer goes out unrecorded.
                    log.error("turn.record_failed", attempts=attempt, detail=str(exc)[:300])
                    return turn, False
                log.warning("turn.record_retry", attempt=attempt, error_code=exc.error_code)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if saved.result is None:  # the lease was lost or the head moved, and no run saved it
            log.error("turn.not_recorded", outcome=saved.outcome)
            return _error(request, "internal", retryable=True, started=started), False
        # Another run of this update may have been recorded first: its answer counts, so every
        # caller sees one answer.
        if saved.outcome == "saved_by_another_run":
            log.warning("turn.recorded_by_another_run")
        return saved.result, True

    async def _keep_lease(self, holder: LeaseHolder) -> None:
        interval = max(self.settings.lease_duration_s / 3, 1.0)
        while True:
            await self.clock.sleep(interval)
            try:
                holder.lease = await asyncio.to_thread(
                    self.registry.renew_lease, holder.lease, duration_s=self.settings.lease_duration_s
                )
            except LeaseLostError:
                log.error("turn.lease_lost")
                holder.lost = True
                holder.lost_event.set()
                return
            except SessionCoreError as exc:  # a storage hiccup: try again next interval
                log.warning("turn.lease_renew_failed", error_type=type(exc).__name__)


async def _ended_at_compaction(end: RunEnd, holder: LeaseHolder, live: LiveProgress | None) -> RunEnd | None:
    """How a turn ends at its compaction ahead (which ran to ``end``), before its message's CLI
    starts: stopped by the user or its lease lost, during the compaction or since. None: the
    message runs."""
    if end in (RunEnd.STOPPED, RunEnd.LEASE_LOST):
        return end  # the compaction's run said so already (the user saw it stop)
    if holder.lost:
        return RunEnd.LEASE_LOST
    if live is not None and await live.stop_asked():
        live.emit(TurnStopped())
        return RunEnd.STOPPED
    return None


def _nothing_to_resume(request: TurnRequest, started: float) -> TurnResult:
    """[I] A press whose approval was answered by an earlier run: nothing to run or say."""
    return TurnResult(
        version=TURN_VERSION,
        session_key=request.session_key,
        turn_id=request.turn_id,
        duration_ms=int((time.perf_counter() - started) * 1000),
    )


def _history_too_large(
    request: TurnRequest, history: HistorySize, started: float, answering: Approval | None, *, memory_mb: int
) -> TurnResult:
    """The answer to a turn whose history the runtime's memory cannot load: /new helps, a
    retry does not. A waiting call this message declined says so (its buttons go); one a
    button allowed did not run, so its buttons stay. No alarm: the log line names the setting
    (a lowered RuntimeMemoryMb refuses every chat that outgrew it)."""
    log.warning(
        "turn.history_too_large",
        history_mb=round(history.mb, 1),
        limit_mb=round(history.limit_mb, 1),
        loaded_mb=None if history.loaded_mb is None else round(history.loaded_mb, 1),
        fix=memory_fix(history, memory_mb),
    )
    refused = _error(request, "bad_request", retryable=False, started=started, reason="history_too_large")
    declined = answering.outcome() if answering is not None and answering.choice == "deny" else None
    return msgspec.structs.replace(refused, history=history, approval_outcome=declined)


def _error(
    request: TurnRequest,
    kind: ErrorKind,
    *,
    retryable: bool,
    started: float,
    reason: ErrorReason | None = None,
) -> TurnResult:
    return TurnResult(
        version=TURN_VERSION,
        session_key=request.session_key,
        turn_id=request.turn_id,
        error_kind=kind,
        error_reason=reason,
        retryable=retryable,
        duration_ms=int((time.perf_counter() - started) * 1000),
    )
