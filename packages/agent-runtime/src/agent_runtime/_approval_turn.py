"""[I] A turn's part in tool approvals: before the run, what the turn says about the session's
waiting call (the user's decision, or that a new message passed it by); after it, the call the
run held back (kept for the chat's buttons), the answered approval settled. "Always" is granted
when its call is taken to run.

Decided (README "Approvals"): a message sent while a call waits declines that call, and the
message goes to the agent, so nothing the user writes is lost or queued behind an answer that
may never come.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import msgspec
from session_core import (
    Approval,
    ApprovalNotPending,
    ApprovalOutcome,
    Approvals,
    SessionCoreError,
    SessionKey,
    StagedAttachment,
    TurnRequest,
    TurnResult,
    get_logger,
    new_approval_id,
)

from ._approval_gate import ApprovalGate, HeldCall, call_fingerprint
from ._claude_config import ClaudeConfig

log = get_logger("agent_runtime._approvals")

# ``decided_by`` of a call declined because the user wrote a new message instead (what the
# chat shows is decided by ``answered_by``, never by this name).
NEW_MESSAGE = "a new message"


@dataclass
class ApprovalPlan:
    """How this turn's run starts: its prompt, its hook, and the approval it answers."""

    prompt: str
    gate: ApprovalGate
    answering: Approval | None = None
    nothing_to_do: bool = False  # a press whose approval an earlier turn answered
    opening: Approval | None = None  # the call this run held back, stored once it is recorded

    @property
    def brings_files(self) -> bool:
        """Whether the files sent with the question this run answers are restored for it: for
        a call the user allowed (about to run, or run by an attempt that did not finish), not
        for a declined or stopped one (a new message that declined it brings its own)."""
        answering = self.answering
        return (
            answering is not None
            and answering.choice in ("once", "always")
            and answering.answered_by != "stop"
        )


class ApprovalSteps:
    """The approval steps of ``Runtime`` (which sets these attributes)."""

    config: ClaudeConfig
    approvals: Approvals | None

    async def _approval_plan(
        self, key: SessionKey, request: TurnRequest, prompt: str, sdk_session: str | None
    ) -> ApprovalPlan:
        store = self.approvals
        gate = ApprovalGate(self.config.approvals)
        if store is None or (not gate.active and request.resume_approval is None):
            # nothing asks in this deployment: no read is spent. A press is still answered: its
            # call waited under the rules of an earlier deploy, and the user expects an answer.
            return ApprovalPlan(prompt=prompt, gate=gate)
        waiting, grants = await asyncio.gather(
            asyncio.to_thread(store.current, key), asyncio.to_thread(store.grants, key)
        )
        gate.grants = [g.rule for g in grants]
        if grants:  # the chat is in use: its grants last as long as its history (see keep_alive)
            await asyncio.to_thread(store.keep_grants, key, grants)
        if waiting is not None and (waiting.state == "settled" or waiting.sdk_session_id != sdk_session):
            waiting = None  # answered already, or the session moved on (/new)
        if request.resume_approval is not None:
            if (
                waiting is None
                or waiting.approval_id != request.resume_approval
                or waiting.state == "pending"
            ):
                log.info("approval.nothing_to_answer", approval_id=request.resume_approval)
                return ApprovalPlan(prompt="", gate=gate, nothing_to_do=True)
            return self._answer_plan(key, waiting, gate, also=None)
        if waiting is None:
            return ApprovalPlan(prompt=prompt, gate=gate)
        if waiting.state == "used":  # the turn that ran it did not finish: say so, once
            return ApprovalPlan(
                prompt=f"{_ran_already_text(waiting)}\n\n{prompt}", gate=gate, answering=waiting
            )
        if waiting.state == "pending":
            try:
                await asyncio.to_thread(
                    store.decide,
                    key,
                    waiting.approval_id,
                    "deny",
                    decided_by=NEW_MESSAGE,
                    answered_by="new_message",
                )
            except ApprovalNotPending as raced:  # a button won the race: its answer stands
                if raced.current is None or raced.current.state != "decided":
                    return ApprovalPlan(prompt=prompt, gate=gate)
                return self._answer_plan(key, raced.current, gate, also=prompt)
            passed_by = msgspec.structs.replace(
                waiting,
                state="decided",
                choice="deny",
                decided_by=NEW_MESSAGE,
                answered_by="new_message",
            )
            return ApprovalPlan(
                prompt=f"{_passed_by_text(waiting)}\n\n{prompt}", gate=gate, answering=passed_by
            )
        # Decided by a button whose turn is still queued behind this message: say both now
        # (that turn then finds nothing to do).
        return self._answer_plan(key, waiting, gate, also=prompt)

    async def _decline_stopped_call(self, key: SessionKey, approval_id: str | None) -> ApprovalOutcome | None:
        """The user stopped the turn that was to make the call of decided approval
        ``approval_id`` before it made it: the call is declined (``answered_by`` "stop"), so the
        next turn tells the agent it did not run instead of running it, and the chat's asking
        message says so at once. Answers how the approval now reads (None: nothing declined:
        no such approval, or its allowance was taken, so the call may have run). The producer
        declines it already when it keeps a stop for a press's turn that has not begun (see
        session_core's LiveTurnsWithBacklog); this is for a stop that found the turn begun."""
        store = self.approvals
        if store is None or approval_id is None:
            return None
        # Under this turn's lease: no other turn of the session can take the allowance meanwhile.
        approval = await asyncio.to_thread(store.stop, key, approval_id)
        return None if approval is None else approval.outcome()

    def _answer_plan(
        self, key: SessionKey, approval: Approval, gate: ApprovalGate, *, also: str | None
    ) -> ApprovalPlan:
        """The turn that tells the agent the user's decision (and, raced, their new message).
        An allowed call is let through once: its allowance is taken in the store before it
        runs, so a retry of this turn (after a crash, a timeout, a Stop) never runs it again."""
        store = self.approvals
        if approval.state == "used":
            text = _ran_already_text(approval)
        elif approval.answered_by == "stop":
            text = f"[Approval] I stopped your {approval.tool_name} call before it ran; it did not run."
        elif approval.choice == "deny":
            text = f"[Approval] I declined your {approval.tool_name} call; it did not run."
            if approval.reason.strip():
                text += f" {approval.reason.strip()}"
        else:
            gate.allowed_once = approval.call_fingerprint
            if store is not None:
                gate.claim = lambda: self._take_allowance(key, approval)
            scope = "once"
            if approval.choice == "always":
                gate.grants = [*gate.grants, approval.grant_rule]
                scope = f"and I allow {approval.grant_rule} from now on in this chat"
            text = (
                f"[Approval] I allowed your {approval.tool_name} call ({scope}). "
                "Make exactly that call again now."
            )
        prompt = text if not also else f"{text}\n\n{also}"
        return ApprovalPlan(prompt=prompt, gate=gate, answering=approval)

    async def _take_allowance(self, key: SessionKey, approval: Approval) -> bool:
        """Take the allowance of ``approval`` for its one run (False: taken already, or a /stop
        declined it). "Always" becomes the chat's grant at that moment, once: however the turn
        then ends (stopped, timed out, crashed, retried), the user's decision stands."""
        store = self.approvals
        assert store is not None
        if not await asyncio.to_thread(store.use, key, approval.approval_id):
            return False
        if approval.choice == "always":
            await self._grant(key, approval)
        return True

    async def _grant(self, key: SessionKey, approval: Approval) -> None:
        """Store "Always" as the chat's grant. A write that fails only costs the grant (the next
        such call asks again): the call, the answer and the approval's settling go on."""
        store = self.approvals
        assert store is not None
        try:
            await asyncio.to_thread(store.grant, key, approval.grant_rule, granted_by=approval.decided_by)
        except SessionCoreError as exc:
            log.warning("approval.grant_failed", error_type=type(exc).__name__, tool=approval.tool_name)

    async def _with_approval(
        self, key: SessionKey, request: TurnRequest, turn: TurnResult, plan: ApprovalPlan
    ) -> TurnResult:
        """The run's answer with what it did about approvals: the approval it answered, and the
        call it held back (stored by ``_approval_recorded`` once the answer is recorded: a retry
        of an unrecorded run must still find the approval it answers)."""
        store, held = self.approvals, plan.gate.held
        outcome = plan.answering.outcome() if plan.answering is not None else None
        if held is None or store is None or turn.session_id is None:
            return msgspec.structs.replace(turn, approval_outcome=outcome)
        # The files the held call may work on: this message's, or (a press's turn, which
        # brings none) those of the message that asked before, restored for this run only
        # when its call was allowed (a declined question's files are not in this run).
        kept = plan.answering.attachments if plan.answering is not None and plan.brings_files else ()
        plan.opening = _approval_for(held, turn.session_id, request.user_id, request.attachments or kept)
        return msgspec.structs.replace(
            turn, approval_request=plan.opening.request(), approval_outcome=outcome
        )

    async def _approval_recorded(self, key: SessionKey, plan: ApprovalPlan, answer: TurnResult) -> None:
        """The answered approval is done with ("Always" becomes a grant of the chat), and the
        call the run held back waits for the user.

        The answer is recorded already, so a write refused here fails nothing: a retry would
        only replay it. An unsettled approval tells the next message its call ran (if it did)
        or was answered; an unstored one leaves buttons that say it no longer waits."""
        store = self.approvals
        if store is None or answer.replayed:  # a replay: the turn that recorded it did this
            return
        answering = plan.answering
        if answering is not None:
            # Granted when its call is taken to run (``_take_allowance``); here only when the
            # agent did not make the call again: the press still stands for the chat.
            made = plan.gate.allowed_call_made or answering.state == "used"
            if answering.choice == "always" and not made:
                await self._grant(key, answering)
            try:
                await asyncio.to_thread(store.settle, key, answering.approval_id)
            except SessionCoreError as exc:
                log.error("approval.settle_failed", error_type=type(exc).__name__, tool=answering.tool_name)
        if plan.opening is not None:
            try:
                await asyncio.to_thread(store.open, key, plan.opening)
            except SessionCoreError as exc:
                log.error("approval.open_failed", error_type=type(exc).__name__, tool=plan.opening.tool_name)
                return
            log.info("approval.opened", tool=plan.opening.tool_name, approval_id=plan.opening.approval_id)

    async def _early_end_recorded(self, key: SessionKey, plan: ApprovalPlan, answer: TurnResult) -> None:
        """A turn that ended early (stopped, out of time, its CLI dead) is recorded: an answered
        approval whose call was taken to run is done with, as at a normal end (the next message
        resumes after the call). One whose call did not run waits for the next message to say so;
        after an unrecorded end, the next message is told the call ran (it resumes before it)."""
        answering = plan.answering
        if answering is not None and (plan.gate.allowance_taken or answering.state == "used"):
            await self._approval_recorded(key, plan, answer)


def _passed_by_text(approval: Approval) -> str:
    return (
        f"[Approval] I did not answer your request to make a {approval.tool_name} call; it did not "
        "run. My new message follows."
    )


def _ran_already_text(approval: Approval) -> str:
    return (
        f"[Approval] The {approval.tool_name} call I allowed has run, but the turn that ran it "
        "did not finish, so its result may be missing. Do not run it again."
    )


def _approval_for(
    held: HeldCall, sdk_session_id: str, requested_by: int | None, attachments: tuple[StagedAttachment, ...]
) -> Approval:
    view = held.view
    return Approval(
        approval_id=new_approval_id(),
        state="pending",
        tool_name=held.tool_name,
        tool_use_id=held.tool_use_id,
        call_fingerprint=call_fingerprint(held.tool_name, held.tool_input),
        summary=view.summary,
        grant_rule=view.grant_rule,
        sdk_session_id=sdk_session_id,
        requested_by=requested_by,
        attachments=attachments,
    )
