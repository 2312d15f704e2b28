"""Amounts as users read them in /status, /cost and the usage line: a paid turn never reads
as nothing, however cheap (a short turn of a small model on cached input costs ~$0.00003)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from session_core import (
    TURN_VERSION,
    BudgetCaps,
    BudgetHold,
    BudgetLedger,
    DynamoTable,
    SessionKey,
    SessionRegistry,
    TurnResult,
)
from sqs_consumer import run_command
from sqs_consumer._usage_footer import usage_footer
from telegram_core import ChatSettings

KEY = SessionKey.parse("default/1201/0")
NOON = datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp()
CHEAP = 0.00003  # 3,000 cached input tokens of a model at $0.01 per million


def _answer(cost_usd: float) -> TurnResult:
    return TurnResult(
        version=TURN_VERSION, session_key=KEY.canonical, turn_id=1, session_id="s-1", cost_usd=cost_usd
    )


def _command(name: str, aws: Any, **options: Any) -> str:
    tables = {"dynamodb": aws.dynamodb, "table": aws.resources.table}
    return run_command(
        name,
        KEY,
        registry=SessionRegistry(**tables),
        chat_settings=ChatSettings(DynamoTable(**tables)),
        retention_days=25,
        **options,
    )


def test_a_cheap_turn_is_not_shown_as_costing_nothing(aws: Any) -> None:
    assert usage_footer(_answer(CHEAP)).endswith(" · under $0.0001_")
    assert usage_footer(_answer(0.0)).endswith(" · $0 (nothing billed)_")

    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    registry.record_turn(lease, result=_answer(CHEAP))
    registry.release_lease(lease)
    status = _command("status", aws)
    assert "<b>This conversation</b> (since /new): 1 turn, under $0.0001\n" in status
    assert "<b>This chat in total</b>: 1 turn, under $0.0001\n" in status

    caps = BudgetCaps(chat_daily_usd=1.0)
    ledger = BudgetLedger(
        dynamodb=aws.dynamodb, table=aws.resources.table, caps=caps, tenant="default", clock=lambda: NOON
    )
    hold = ledger.hold(chat_id=KEY.chat_id, user_id=42)
    assert isinstance(hold, BudgetHold)
    ledger.settle(hold, CHEAP)
    report = _command("cost", aws, budgets=ledger, user_id=42)
    assert "<b>This chat</b>, today: under $0.0001 of $1.00" in report
    assert "<b>You</b>, today: under $0.0001 no cap" in report
