"""One turn: lease → (replay | restore → Claude Agent SDK → persist) → exactly-once record."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import msgspec
from claude_agent_sdk import (
    AgentDefinition,
    AssistantMessage,
    ClaudeAgentOptions,
    MirrorErrorMessage,
    ProcessError,
    ResultError,
    ResultMessage,
    SystemMessage,
    TextBlock,
    import_session_to_store,
    project_key_for_directory,
    query,
)
from session_core import (
    TURN_VERSION,
    InvalidSessionKeyError,
    LeaseHeldError,
    LeaseLostError,
    SessionCoreError,
    SessionKey,
    StaleHeadError,
    StorageError,
    TurnRequest,
    TurnResult,
    Usage,
    bind_correlation,
    boot_ticks,
    get_logger,
    well_formed,
)

from ._claude_config import ClaudeConfig
from ._cost import turn_cost_usd
from ._environment import (
    ModelAccess,
    build_cli_environment,
    install_cli_launcher,
    sandbox_connect_ports,
)
from ._errors import AgentRuntimeError, AttachmentError
from ._process_sweep import reap_zombie_children, sweep_turn_processes
from ._settings import RuntimeSettings
from ._workspace import SessionWorkspace, clear_attachments, safe_file_name, session_workspace

log = get_logger(__name__)

# What users read; never a stack trace or a provider message.
USER_MESSAGES = {
    "busy": "I'm still working on your previous message in this chat; I'll answer this one right after.",
    "model_error": "The AI model did not answer this time (it may be busy). Please try again in a minute.",
    "internal": "Something went wrong on my side while answering. Please try again.",
    "bad_request": "This message could not be processed.",
    "max_turns": "I stopped because this took too many steps. Please ask for a smaller part.",
    "attachment": "I could not open the file you sent. Please send it again.",
    "timeout": "This took longer than I can spend on one message, so I stopped. "
    "Please ask for a smaller part.",
    "max_budget": "I stopped because answering this would cost more than one message may spend. "
    "Please ask for a smaller part.",
}
# Stop this long before the caller's deadline: killing the CLI, recording and answering.
DEADLINE_MARGIN_S = 3.0
# Without a deadline, keep retrying to record a paid answer this long.
_RECORD_RETRY_S = 60.0
_RECORD_ATTEMPT_S = 1.0  # what one more complete_turn attempt needs at least


class PhaseTimes(msgspec.Struct, kw_only=True):
    """Seconds spent per phase of the last turn (for logs and bench/runtime_turn.py)."""

    restore_s: float = 0.0
    sdk_s: float = 0.0
    persist_s: float = 0.0
    total_s: float = 0.0
    store_loads: int = 0
    store_appends: int = 0


def transcript_project(key: SessionKey) -> str:
    """The project key under which a session's transcripts are stored: the session key itself,
    not the SDK's key derived from the working directory, so a session resumes whatever
    SESSIONS_ROOT (or `agentbot dev --state-dir`) a container uses."""
    return key.canonical


class _TimedStore:
    """Delegates to the transcript store for the running turn's session (``scope``: every
    project key the SDK passes becomes the session's) and adds up the time spent in it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.scope: str | None = None
        self.load_s = 0.0
        self.append_s = 0.0
        self.loads = 0
        self.appends = 0

    def reset(self) -> None:
        self.load_s = self.append_s = 0.0
        self.loads = self.appends = 0

    async def load(self, key: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self.inner.load(self._scoped(key))
        finally:
            self.load_s += time.perf_counter() - started
            self.loads += 1

    async def append(self, key: Any, entries: Any) -> None:
        started = time.perf_counter()
        try:
            await self.inner.append(self._scoped(key), entries)
        finally:
            self.append_s += time.perf_counter() - started
            self.appends += 1

    async def list_subkeys(self, key: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self.inner.list_subkeys(self._scoped(key))
        finally:
            self.load_s += time.perf_counter() - started

    async def list_sessions(self, project_key: str) -> Any:
        return await self.inner.list_sessions(self.scope or project_key)

    async def delete(self, key: Any) -> None:
        await self.inner.delete(self._scoped(key))

    async def list_session_summaries(self, project_key: str) -> Any:
        return await self.inner.list_session_summaries(self.scope or project_key)

    def _scoped(self, key: Any) -> Any:
        return key if self.scope is None else {**key, "project_key": self.scope}


@dataclass
class _LeaseHolder:
    lease: Any
    lost: bool = False
    lost_event: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class _Run:
    prompt: str
    update_id: int
    resume: str | None
    resume_at: str | None  # resume_session_at: leave an unrecorded turn out
    resumed_total_usd: float = 0.0  # the resumed SDK session's running total so far
    max_cost_usd: float | None = None  # the SDK's max_budget_usd


@dataclass
class _Outcome:
    result: ResultMessage | None = None
    session_id: str | None = None
    texts: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    mirror_errors: int = 0
    caught_up_after: int = 0
    spent: bool = False  # the model answered at least once (tokens were paid for)
    recorded: bool = False  # the answer is in the registry: a retry replays it
    failure: Exception | None = None

    @property
    def may_retry(self) -> bool:
        """Whether running this update again cannot pay twice for one answer."""
        return self.recorded or not self.spent


@dataclass
class Runtime:
    """Everything a turn needs, built once per container (see ``handler.build_runtime``)."""

    settings: RuntimeSettings
    config: ClaudeConfig
    store: Any
    registry: Any
    s3: Any
    model: ModelAccess
    cli_path: str
    owner: str = field(default_factory=lambda: f"runtime-{uuid.uuid4().hex[:12]}")
    last_phases: PhaseTimes = field(default_factory=PhaseTimes)
    stderr_tail: list[str] = field(default_factory=list)
    # Every descendant of this process started after this moment belongs to some turn.
    started_ticks: int = field(default_factory=boot_ticks)
    _timed_store: _TimedStore | None = None

    def __post_init__(self) -> None:
        self._timed_store = _TimedStore(self.store)

    # -- public -------------------------------------------------------------------------
    def run_turn(
        self, request: TurnRequest, *, time_budget_s: float | None = None, request_id: str | None = None
    ) -> TurnResult:
        """Run (or replay) the turn that answers ``request.update_id``; never raises for
        turn-level failures: they come back as a TurnResult with ``error_kind`` set."""
        return asyncio.run(self.run_turn_async(request, time_budget_s=time_budget_s, request_id=request_id))

    async def run_turn_async(
        self, request: TurnRequest, *, time_budget_s: float | None = None, request_id: str | None = None
    ) -> TurnResult:
        """Async form of :meth:`run_turn`."""
        started = time.perf_counter()
        bind_correlation(update_id=request.update_id, session_key=request.session_key, request_id=request_id)
        outcome = _Outcome()
        try:
            return await self._turn(request, started, time_budget_s, outcome)
        except (SessionCoreError, AgentRuntimeError) as exc:
            # A storage outage, a missing secret...: a clean message for the user, a log for the operator.
            log.error(
                "turn.failed", error_type=type(exc).__name__, detail=str(exc)[:300], spent=outcome.spent
            )
            return _error(request, "internal", retryable=exc.retryable and outcome.may_retry, started=started)
        except Exception as exc:  # a bug must not raise out of the handler (SQS would pay again)
            log.exception("turn.crashed", error_type=type(exc).__name__, spent=outcome.spent)
            return _error(request, "internal", retryable=outcome.may_retry, started=started)

    async def _turn(
        self, request: TurnRequest, started: float, time_budget_s: float | None, outcome: _Outcome
    ) -> TurnResult:
        try:
            key = SessionKey.parse(request.session_key)
        except InvalidSessionKeyError as exc:
            log.warning("turn.bad_session_key", field=exc.field)
            return _error(request, "bad_request", retryable=False, started=started)
        recorded = await asyncio.to_thread(self.registry.get_turn_result, key, request.update_id)
        if recorded is not None:
            log.info("turn.replayed")
            return _replayed(recorded)
        budget = _time_budget(time_budget_s, request.deadline_epoch_ms)
        if budget is not None and budget <= 0:
            # The caller stops waiting before anything could be done: spend nothing.
            log.warning("turn.deadline_passed", deadline_epoch_ms=request.deadline_epoch_ms)
            return _error(
                request, "model_error", retryable=True, started=started, user_message=USER_MESSAGES["timeout"]
            )
        deadline = None if budget is None else started + budget
        try:
            lease = await asyncio.to_thread(
                self.registry.acquire_lease, key, owner=self.owner, duration_s=self.settings.lease_duration_s
            )
        except LeaseHeldError:
            log.info("turn.busy")
            return _error(request, "busy", retryable=True, started=started)
        holder = _LeaseHolder(lease)
        try:
            # A racing container may have answered between our check and the lease.
            recorded = await asyncio.to_thread(self.registry.get_turn_result, key, request.update_id)
            if recorded is not None:
                return _replayed(recorded)
            return await self._leased_turn(key, request, holder, started, deadline, outcome)
        finally:
            with contextlib.suppress(SessionCoreError):
                await asyncio.to_thread(self.registry.release_lease, holder.lease)

    # -- the leased part ------------------------------------------------------------------
    async def _leased_turn(
        self,
        key: SessionKey,
        request: TurnRequest,
        holder: _LeaseHolder,
        started: float,
        deadline: float | None,
        outcome: _Outcome,
    ) -> TurnResult:
        if request.new_session:
            await asyncio.to_thread(self.registry.start_new_session, key)
        record = await asyncio.to_thread(self.registry.get_session, key)
        resume = None if record is None else record.sdk_session_id
        resumed_total = 0.0 if record is None or resume is None else record.sdk_session_cost_usd
        store = self._timed_store
        assert store is not None
        store.reset()
        store.scope = transcript_project(key)
        # Renewed until the result is recorded; a lost lease stops the run at once.
        renewer = asyncio.create_task(self._keep_lease(holder))
        try:
            with session_workspace(
                self.settings.sessions_root,
                key,
                self.config,
                disk_limit_mb=self.settings.session_disk_limit_mb,
            ) as workspace:
                try:
                    prompt = await self._stage_attachments(key, request, workspace)
                except AttachmentError as exc:
                    log.warning("turn.attachment_failed", reason=exc.reason)
                    return _error(
                        request,
                        "bad_request",
                        retryable=exc.retryable,
                        started=started,
                        user_message=USER_MESSAGES["attachment"],
                    )
                sdk_started = time.perf_counter()
                resume_at = None if resume is None else await self._resume_point(key, resume, workspace)
                run = _Run(prompt, request.update_id, resume, resume_at, resumed_total, request.max_cost_usd)
                stopped = await self._run_until_stopped(run, workspace, outcome, holder, deadline)
                if stopped == "lease_lost":
                    return await self._lease_lost(key, request, started)
                if stopped == "timeout":
                    # A long task started again three times costs three times: tell the user,
                    # unless nothing was spent yet.
                    log.warning("turn.timeout", spent=outcome.spent)
                    return _error(
                        request,
                        "model_error",
                        retryable=not outcome.spent,
                        started=started,
                        user_message=USER_MESSAGES["timeout"],
                    )
                sdk_s = time.perf_counter() - sdk_started
                turn = self._paid_answer(request, run, outcome, started)
                if turn is not None:
                    # Tokens were paid for this answer: record it (cost included) before
                    # anything else can fail, so a retry replays it instead of paying again.
                    persist_started = time.perf_counter()
                    answer, recorded = await self._record(key, request, holder, turn, started, deadline)
                    outcome.recorded = recorded
                    persist_s = time.perf_counter() - persist_started
                if outcome.failure is not None and turn is not None:
                    log.warning("turn.failed_after_answer", error_type=type(outcome.failure).__name__)
                elif isinstance(outcome.failure, AgentRuntimeError | SessionCoreError):
                    raise outcome.failure  # ours: classified once, in run_turn_async
                elif outcome.failure is not None:  # ProcessError/CLIConnectionError/...
                    log.error(
                        "turn.sdk_failed",
                        error_type=type(outcome.failure).__name__,
                        stderr=self.stderr_tail[-5:],
                        spent=outcome.spent,
                    )
                    # A run that already paid for tokens is not bought a second time.
                    return _error(request, "internal", retryable=outcome.may_retry, started=started)
            if turn is None:
                return await self._unpaid_outcome(key, request, run, holder, outcome, started)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
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
        return answer

    def _paid_answer(
        self, request: TurnRequest, run: _Run, outcome: _Outcome, started: float
    ) -> TurnResult | None:
        """The TurnResult of a run that ended with a successful result and whose transcript
        the store holds; None when there is no answer to record."""
        result = outcome.result
        if result is None or result.is_error or result.subtype != "success":
            return None
        if outcome.mirror_errors > outcome.caught_up_after:
            return None  # not done until the store caught up (see _unpaid_outcome)
        return TurnResult(
            version=TURN_VERSION,
            session_key=request.session_key,
            update_id=request.update_id,
            text=well_formed("\n\n".join(outcome.answers or outcome.texts).strip()),
            session_id=result.session_id,
            cost_usd=_run_cost(run, result),
            session_cost_usd=float(result.total_cost_usd or 0.0),
            usage=_usage(result.usage),  # the CLI's usage is this run's, not the session's
            num_turns=result.num_turns,
            duration_ms=int((time.perf_counter() - started) * 1000),
        )

    async def _unpaid_outcome(
        self,
        key: SessionKey,
        request: TurnRequest,
        run: _Run,
        holder: _LeaseHolder,
        outcome: _Outcome,
        started: float,
    ) -> TurnResult:
        """The answer to a finished run that left nothing to record; what it cost (known from
        an error result) is counted in the chat's cost and returned for the budgets."""
        result = outcome.result
        cost = 0.0 if result is None else _run_cost(run, result)
        same_session = result is not None and result.session_id == run.resume
        total = float(result.total_cost_usd or 0.0) if result is not None and same_session else None
        await self._count_failed_spend(key, cost, total)
        answer = await self._unrecorded_answer(key, request, holder, outcome, started)
        return msgspec.structs.replace(answer, cost_usd=cost) if cost > 0 and not answer.replayed else answer

    async def _unrecorded_answer(
        self, key: SessionKey, request: TurnRequest, holder: _LeaseHolder, outcome: _Outcome, started: float
    ) -> TurnResult:
        result = outcome.result
        if result is not None and result.subtype in ("error_max_turns", "error_max_budget_usd"):
            log.warning("turn.stopped_by_limit", subtype=result.subtype, num_turns=result.num_turns)
            kind = "max_turns" if result.subtype == "error_max_turns" else "max_budget"
            message = USER_MESSAGES[kind]
            return _error(request, "model_error", retryable=False, started=started, user_message=message)
        if result is None or result.is_error or result.subtype != "success":
            log.warning(
                "turn.model_error",
                subtype=getattr(result, "subtype", None),
                api_status=getattr(result, "api_error_status", None),
            )
            return _error(request, "model_error", retryable=True, started=started)
        if holder.lost:
            return await self._lease_lost(key, request, started)
        # A success whose transcript the store could not take: not done (ARCHITECTURE.md).
        log.error("turn.store_behind", mirror_errors=outcome.mirror_errors)
        return _error(request, "internal", retryable=True, started=started)

    async def _count_failed_spend(
        self, key: SessionKey, cost_usd: float, session_total: float | None
    ) -> None:
        """A run that ended in an error result still paid for its tokens: add them to the
        chat's cost. A run killed before its result (timeout, lost lease) reports none here;
        the CLI's running total of the session may include it at the next turn."""
        if cost_usd <= 0:
            return
        try:
            await asyncio.to_thread(
                self.registry.add_failed_turn_cost, key, cost_usd, session_cost_usd=session_total
            )
        except SessionCoreError as exc:
            log.warning("turn.failed_cost_not_counted", error_type=type(exc).__name__, cost_usd=cost_usd)
        else:
            log.info("turn.failed_cost_counted", cost_usd=cost_usd)

    async def _run_until_stopped(
        self,
        run: _Run,
        workspace: SessionWorkspace,
        outcome: _Outcome,
        holder: _LeaseHolder,
        deadline: float | None,
    ) -> str:
        """Run the SDK until it finishes ("done"), the lease is lost ("lease_lost") or the
        time budget ends ("timeout"); a stopped run's CLI and tools are killed."""
        # Nothing a previous turn started may watch this one (normally a no-op: see below).
        self._sweep_processes()
        sdk = asyncio.create_task(self._run_sdk(run, workspace, outcome))
        lost = asyncio.create_task(holder.lost_event.wait())
        try:
            timeout = None if deadline is None else max(deadline - time.perf_counter(), 0.0)
            done, _ = await asyncio.wait({sdk, lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            # Before any result leaves: no process of this turn survives it, and the model
            # key it was given is dead.
            killed = self._sweep_processes()
            self.model.end_turn()
        if sdk in done:
            reap_zombie_children(self.started_ticks)
            return "done"
        sdk.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(sdk, timeout=15)
        reap_zombie_children(self.started_ticks)
        log.info("turn.cli_stopped", processes_killed=killed)
        return "lease_lost" if holder.lost else "timeout"

    def _sweep_processes(self) -> int:
        killed = sweep_turn_processes(scope=self.settings.process_sweep_scope, since_ticks=self.started_ticks)
        if killed:
            log.info("turn.processes_killed", count=killed)
        return killed

    async def _resume_point(self, key: SessionKey, resume: str, workspace: SessionWorkspace) -> str | None:
        """Where to resume so that an unrecorded turn at the transcript's end (a failed or
        timed-out run; its retry) is left out: otherwise the model would read the user's
        message twice. The runtime's prompts carry their update id in their uuid
        (``_prompt_uuid``); the last one is looked up in the registry. None: resume it all."""
        location = {"project_key": transcript_project(key), "session_id": resume}
        try:
            entries = await self.store.load(location) or []
        except Exception as exc:  # the SDK's own load reports a real outage; resume it all
            log.warning("turn.resume_point_unknown", error_type=type(exc).__name__)
            return None
        for index in range(len(entries) - 1, -1, -1):
            entry = entries[index]
            update_id = _prompt_update_id(entry.get("uuid")) if entry.get("type") == "user" else None
            if update_id is None:
                continue
            if await asyncio.to_thread(self.registry.get_turn_result, key, update_id) is not None:
                return None  # the last prompt's turn was recorded: nothing to leave out
            # The prompt hangs off the end of the conversation it was sent to: resume there
            # (not at the entry before it in the file, which may be an earlier failed attempt).
            point = entry.get("parentUuid")
            log.info("turn.unrecorded_turn_left_out", update_id=update_id, dropped=len(entries) - index)
            return point if isinstance(point, str) else None
        return None

    async def _lease_lost(self, key: SessionKey, request: TurnRequest, started: float) -> TurnResult:
        # Whoever took the lease may have answered this very update: that answer counts.
        recorded = await asyncio.to_thread(self.registry.get_turn_result, key, request.update_id)
        if recorded is not None:
            return _replayed(recorded)
        log.error("turn.lease_lost_not_recorded")
        return _error(request, "internal", retryable=True, started=started)

    async def _record(
        self,
        key: SessionKey,
        request: TurnRequest,
        holder: _LeaseHolder,
        turn: TurnResult,
        started: float,
        deadline: float | None,
    ) -> tuple[TurnResult, bool]:
        """Record the paid answer exactly once, retrying storage failures with backoff while
        time remains; if another run of this update was recorded first, that result counts.
        A registry that stays down gets ``turn`` back unrecorded (delivered, not paid again).
        Also says whether the update's answer is now recorded."""
        give_up_at = deadline if deadline is not None else time.perf_counter() + _RECORD_RETRY_S
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                counted = await asyncio.to_thread(self.registry.record_turn, holder.lease, result=turn)
                break
            except (StaleHeadError, LeaseLostError) as exc:
                recorded = await asyncio.to_thread(self.registry.get_turn_result, key, request.update_id)
                if recorded is not None:
                    return _replayed(recorded), True
                log.error("turn.not_recorded", error_type=type(exc).__name__)
                return _error(request, "internal", retryable=True, started=started), False
            except StorageError as exc:
                if time.perf_counter() + delay + _RECORD_ATTEMPT_S > give_up_at:
                    # Running the model again would pay twice: the answer goes out unrecorded.
                    log.error("turn.record_failed", attempts=attempt, detail=str(exc)[:300])
                    return turn, False
                log.warning("turn.record_retry", attempt=attempt, error_code=exc.error_code)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        # Another run of this update may have been recorded first: its answer counts, so every
        # caller sees one answer.
        if counted is not turn:
            log.warning("turn.recorded_by_another_run")
        return counted, True

    async def _keep_lease(self, holder: _LeaseHolder) -> None:
        interval = max(self.settings.lease_duration_s / 3, 1.0)
        while True:
            await asyncio.sleep(interval)
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

    async def _stage_attachments(
        self, key: SessionKey, request: TurnRequest, workspace: SessionWorkspace
    ) -> str:
        clear_attachments(workspace)
        if not request.attachments:
            return request.prompt
        target = Path(workspace.attachments)
        target.mkdir(parents=True, exist_ok=True)
        lines = []
        for index, attachment in enumerate(request.attachments):
            if not attachment.s3_key.startswith(key.s3_prefix) or ".." in attachment.s3_key.split("/"):
                raise AttachmentError(attachment.s3_key, f"is outside the session prefix {key.s3_prefix}")
            name = safe_file_name(attachment.file_name, f"attachment-{index + 1}")
            path = target / name
            if path.exists():
                path = target / f"{index + 1}-{name}"
            try:
                await asyncio.to_thread(
                    self.s3.download_file, self.settings.sessions_bucket, attachment.s3_key, str(path)
                )
            except Exception as exc:  # botocore ClientError / transfer errors
                raise AttachmentError(
                    attachment.s3_key, f"download failed: {type(exc).__name__}", retryable=True
                ) from exc
            size = path.stat().st_size
            lines.append(
                f"- attachments/{path.name} ({attachment.mime_type or 'unknown type'}, {size} bytes)"
            )
        return (
            request.prompt
            + "\n\n[The user attached files, saved in the working directory:\n"
            + "\n".join(lines)
            + "]"
        ).strip()

    def _options(self, run: _Run, workspace: SessionWorkspace) -> ClaudeAgentOptions:
        config, main = self.config, self.config.main
        model_env = self.model.cli_environment()
        env = build_cli_environment(
            home=workspace.home,
            tmp=workspace.tmp,
            config_dir=workspace.config_dir,
            model_env=model_env,
            settings=self.settings,
            cli_path=self.cli_path,
            writable=[workspace.root],
            connect_ports=sandbox_connect_ports(model_env, dict(config.mcp_servers)),
        )
        tail = self.stderr_tail
        tail.clear()

        def keep_stderr(line: str) -> None:
            tail.append(line[:500])
            del tail[:-20]

        return ClaudeAgentOptions(
            cwd=workspace.cwd,
            cli_path=self.cli_launcher,
            env=env,
            system_prompt=config.system_prompt,
            tools=list(main.tools) if main.tools is not None else None,
            allowed_tools=list(main.allowed_tools),
            disallowed_tools=list(main.disallowed_tools),
            permission_mode=main.permission_mode,
            max_turns=main.max_turns,
            model=main.model,
            agents={
                a.name: AgentDefinition(
                    description=a.description,
                    prompt=a.prompt,
                    tools=list(a.tools) if a.tools is not None else None,
                    model=a.model,
                )
                for a in config.agents
            },
            mcp_servers={name: cast(Any, dict(spec)) for name, spec in config.mcp_servers.items()},
            setting_sources=["project"],
            skills=[s.name for s in config.skills],
            session_store=cast(Any, self._timed_store),
            resume=run.resume,
            resume_session_at=run.resume_at,
            max_budget_usd=run.max_cost_usd,
            stderr=keep_stderr,
        )

    @property
    def cli_launcher(self) -> str:
        return install_cli_launcher(Path(self.settings.sessions_root) / ".bin")

    async def _run_sdk(self, run: _Run, workspace: SessionWorkspace, outcome: _Outcome) -> None:
        project_key = project_key_for_directory(workspace.cwd)
        try:
            options = self._options(run, workspace)
            try:
                messages = query(prompt=_prompt_stream(run), options=options)
                await self._consume(messages, outcome, project_key, workspace)
            except (ResultError, ProcessError):
                # The CLI exits non-zero after an error result (ResultError, or ProcessError
                # with a streamed prompt); that result is the outcome.
                if outcome.result is None:
                    raise
            await self._catch_up(outcome, project_key, workspace)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # classified by the caller, with the partial outcome at hand
            outcome.failure = exc

    async def _consume(
        self, messages: Any, outcome: _Outcome, project_key: str, workspace: SessionWorkspace
    ) -> None:
        async for message in messages:
            if isinstance(message, MirrorErrorMessage):
                outcome.mirror_errors += 1
                log.warning("turn.mirror_error")
            elif isinstance(message, SystemMessage) and message.subtype == "init":
                outcome.session_id = message.data.get("session_id")
            elif isinstance(message, AssistantMessage):
                outcome.spent = True
                text = "".join(b.text for b in message.content if isinstance(b, TextBlock))
                if text and message.parent_tool_use_id is None:
                    outcome.texts.append(text)
            elif isinstance(message, ResultMessage):
                # A background subagent that finishes wakes the session for another turn
                # inside this run: every result is part of the answer.
                outcome.result = message
                outcome.session_id = message.session_id
                if message.result:
                    outcome.answers.append(message.result.strip())
                # Still inside the query: the SDK's resume copy of the transcript exists.
                await self._catch_up(outcome, project_key, workspace)

    async def _catch_up(self, outcome: _Outcome, project_key: str, workspace: SessionWorkspace) -> None:
        """After a MirrorErrorMessage the store misses a batch: replay the local transcript
        (duplicate-safe by entry uuid) before the turn may be recorded as done."""
        if outcome.mirror_errors <= outcome.caught_up_after or not outcome.session_id:
            return
        errors_seen = outcome.mirror_errors
        name = f"{outcome.session_id}.jsonl"
        candidates = [
            Path(workspace.config_dir),
            *sorted(
                Path(tempfile.gettempdir()).glob("claude-resume-*"),
                key=lambda p: p.stat().st_mtime,
                reverse=True,
            ),
        ]
        for config_dir in candidates:
            if (config_dir / "projects" / project_key / name).is_file():
                with _process_config_dir(str(config_dir)):
                    await import_session_to_store(
                        outcome.session_id, self._timed_store, directory=workspace.cwd
                    )
                outcome.caught_up_after = errors_seen
                log.info("turn.store_caught_up")
                return
        log.error("turn.catch_up_no_local_transcript")


@contextlib.contextmanager
def _process_config_dir(path: str) -> Iterator[None]:
    # import_session_to_store finds the transcript through this process's CLAUDE_CONFIG_DIR.
    before = os.environ.get("CLAUDE_CONFIG_DIR")
    os.environ["CLAUDE_CONFIG_DIR"] = path
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CLAUDE_CONFIG_DIR", None)
        else:
            os.environ["CLAUDE_CONFIG_DIR"] = before


# Groups 2-3 of the uuid of every prompt the runtime sends; the last group is the update id.
_PROMPT_MARK = "ab07-4b07"


def _prompt_uuid(update_id: int) -> str:
    """A fresh uuid per attempt (the store de-duplicates by uuid) that names its update."""
    random = uuid.uuid4().hex
    if not 0 <= update_id < 1 << 48:
        return str(uuid.UUID(random))
    return f"{random[:8]}-{_PROMPT_MARK}-8{random[8:11]}-{update_id:012x}"


def _prompt_update_id(entry_uuid: object) -> int | None:
    parts = entry_uuid.split("-") if isinstance(entry_uuid, str) else []
    if len(parts) != 5 or f"{parts[1]}-{parts[2]}" != _PROMPT_MARK:
        return None
    try:
        return int(parts[4], 16)
    except ValueError:
        return None


async def _prompt_stream(run: _Run) -> AsyncIterator[dict[str, Any]]:
    # A streamed user message may carry its own uuid; a plain string prompt may not.
    yield {
        "type": "user",
        "session_id": "",
        "message": {"role": "user", "content": run.prompt},
        "parent_tool_use_id": None,
        "uuid": _prompt_uuid(run.update_id),
    }


def _replayed(recorded: TurnResult) -> TurnResult:
    return msgspec.structs.replace(recorded, replayed=True)


def _time_budget(time_budget_s: float | None, deadline_epoch_ms: int | None) -> float | None:
    """Seconds this turn may take: the runtime's own budget (at least 1 s), and no longer than
    the caller's deadline minus a margin for stopping, recording and answering."""
    budgets = [] if time_budget_s is None else [max(time_budget_s, 1.0)]
    if deadline_epoch_ms is not None:
        budgets.append(deadline_epoch_ms / 1000 - time.time() - DEADLINE_MARGIN_S)
    return min(budgets) if budgets else None


def _run_cost(run: _Run, result: ResultMessage) -> float:
    return turn_cost_usd(
        result.total_cost_usd,
        session_id=result.session_id,
        resumed_id=run.resume,
        resumed_total_usd=run.resumed_total_usd,
    )


def _usage(raw: dict[str, Any] | None) -> Usage:
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


def _error(
    request: TurnRequest, kind: str, *, retryable: bool, started: float, user_message: str | None = None
) -> TurnResult:
    return TurnResult(
        version=TURN_VERSION,
        session_key=request.session_key,
        update_id=request.update_id,
        error_kind=kind,  # type: ignore[arg-type]
        user_message=user_message or USER_MESSAGES[kind],
        retryable=retryable,
        duration_ms=int((time.perf_counter() - started) * 1000),
    )
