"""`agentbot chat KEY`: what the registry knows about one chat, for an operator asked "why did
my message get no answer (or two)?": its conversation and who runs its turn now, the answers
saved last with the chunks delivered of each, a pending approval, its budget this period.
Ids, times, outcomes and amounts only: never what anyone wrote or the agent answered."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from session_core import (
    Approval,
    Approvals,
    BudgetCaps,
    BudgetLedger,
    DynamoTable,
    RecordedTurn,
    SessionKey,
    SessionRecord,
    SessionRegistry,
    Spend,
)
from sqs_consumer import usd
from telegram_core import DeliveryLog


@dataclass(frozen=True)
class DeliveredTurn:
    """A saved answer and the message ids of its chunks that went out, by chunk index."""

    turn: RecordedTurn
    chunks_sent: Mapping[int, int]


@dataclass(frozen=True)
class ChatState:
    """One chat as the registry holds it at ``now``."""

    key: SessionKey
    now: float
    session: SessionRecord | None
    turns: list[DeliveredTurn]
    approval: Approval | None
    spending: list[Spend]  # empty when no budget is set


def read_chat_state(
    key: SessionKey,
    *,
    dynamodb: Any,
    table: str,
    caps: BudgetCaps,
    turns: int,
    clock: Callable[[], float] = time.time,
) -> ChatState:
    """Read the chat's records (a handful of DynamoDB reads, one per answer shown)."""
    registry = SessionRegistry(dynamodb=dynamodb, table=table, clock=clock)
    deliveries = DeliveryLog(DynamoTable(dynamodb=dynamodb, table=table, clock=clock))
    recent = [
        DeliveredTurn(turn=turn, chunks_sent=deliveries.delivered_chunks(key, turn.result.turn_id))
        for turn in registry.recent_turns(key, limit=turns)
    ]
    spending: list[Spend] = []
    if caps.any_period_cap:
        ledger = BudgetLedger(dynamodb=dynamodb, table=table, caps=caps, tenant=key.tenant, clock=clock)
        spending = ledger.spending(chat_id=key.chat_id, user_id=None)
    return ChatState(
        key=key,
        now=clock(),
        session=registry.get_session(key),
        turns=recent,
        approval=Approvals(dynamodb=dynamodb, table=table, clock=clock).current(key),
        spending=spending,
    )


def format_chat_state(state: ChatState) -> str:
    """The report the command prints."""
    lines = [f"chat {state.key.canonical}"]
    session = state.session
    if session is None:
        lines.append("  session:  none (no turn answered yet, or its records expired)")
    else:
        lines.append(
            f"  session:  {session.sdk_session_id or 'none (after /new)'}, "
            f"{session.conversation_turns} turns since /new; chat total {session.turns} turns, "
            f"{usd(session.cost_usd)}; last turn saved {_when(session.updated_at)}"
        )
        lines.append(f"  lease:    {_lease(session, state.now)}")
    lines.append(f"  approval: {_approval(state.approval)}")
    lines.append(f"  budget:   {_budget(state.spending)}")
    if not state.turns:
        lines.append(
            "  answers:  none saved (a failed turn saves none: see `agentbot dlq list` and the logs)"
        )
        return "\n".join(lines)
    lines.append("  answers saved last (newest first; a failed turn saves none):")
    for delivered in state.turns:
        lines.append(f"    {_answer(delivered)}")
    return "\n".join(lines)


def _when(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _lease(session: SessionRecord, now: float) -> str:
    if session.lease_owner is None:
        return "free (no turn running)"
    if session.lease_expires_at <= now:
        owner, until = session.lease_owner, _when(session.lease_expires_at)
        return f"expired {until} (held by {owner}, which never released it)"
    return f"held by {session.lease_owner} until {_when(session.lease_expires_at)} (a turn is running)"


def _approval(approval: Approval | None) -> str:
    if approval is None:
        return "none"
    asker = f"user {approval.requested_by}" if approval.requested_by is not None else "unknown user"
    return f"{approval.state}: {approval.tool_name} asked by {asker} (approval {approval.approval_id})"


def _budget(spending: list[Spend]) -> str:
    if not spending:
        return "no cap set"
    parts = []
    for spend in spending:
        cap = f" of {usd(spend.cap_usd)}" if spend.cap_usd is not None else " (no cap)"
        parts.append(f"{spend.scope} {spend.period} {usd(spend.spent_usd)}{cap}")
    return ", ".join(parts)


def _answer(delivered: DeliveredTurn) -> str:
    result = delivered.turn.result
    if result.error_kind is not None:
        outcome = f"failed: {result.error_kind}"
    elif result.approval_request is not None:
        outcome = "waiting for approval"
    elif result.stopped:
        outcome = "stopped"
    else:
        outcome = "answered"
    sent = sorted(delivered.chunks_sent)
    chunks = f"{len(sent)} chunk{'s' * (len(sent) != 1)} sent" if sent else "nothing sent yet"
    return (
        f"update {result.turn_id}  {_when(delivered.turn.recorded_at)}  {outcome}  "
        f"{usd(result.cost_usd)}  {result.duration_ms} ms  {chunks}"
    )
