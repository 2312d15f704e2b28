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
    session_item_pk,
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


def test_months_of_use_read_with_thousands_grouped_as_the_usage_line_groups_tokens(aws: Any) -> None:
    """A busy chat after months: /status read "1500 turns, $1234.5678" and /cost "$1234.50 of
    $2000.00", while the usage line under each answer writes "12,400 tokens"."""
    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)
    lease = registry.acquire_lease(KEY, owner="runtime-a", duration_s=60)
    registry.record_turn(lease, result=_answer(1234.5678))
    registry.release_lease(lease)
    aws.dynamodb.update_item(  # the other 1,499 turns of those months, cost already counted
        TableName=aws.resources.table,
        Key={"pk": {"S": session_item_pk(KEY)}, "sk": {"S": "meta"}},
        UpdateExpression="ADD turns :more, conversation_turns :more",
        ExpressionAttributeValues={":more": {"N": "1499"}},
    )
    status = _command("status", aws)
    assert "<b>This conversation</b> (since /new): 1,500 turns, $1,234.5678\n" in status
    assert "<b>This chat in total</b>: 1,500 turns, $1,234.5678\n" in status

    caps = BudgetCaps(chat_monthly_usd=2000.0)
    ledger = BudgetLedger(
        dynamodb=aws.dynamodb, table=aws.resources.table, caps=caps, tenant="default", clock=lambda: NOON
    )
    hold = ledger.hold(chat_id=KEY.chat_id, user_id=42)
    assert isinstance(hold, BudgetHold)
    ledger.settle(hold, 1234.5)
    report = _command("cost", aws, budgets=ledger, user_id=42)
    assert "<b>This chat</b>, this month: $1,234.50 of $2,000.00" in report


def test_cost_just_after_midnight_says_today_ends_in_hours_not_in_a_day(aws: Any) -> None:
    """Half a minute into the UTC day, /cost said "today ends in 1 d 0 h" (23 h 59.5 min
    rounded up): a day that ends in a day reads as a mistake."""
    just_after_midnight = datetime(2026, 12, 3, 0, 0, 30, tzinfo=UTC).timestamp()
    ledger = BudgetLedger(
        dynamodb=aws.dynamodb,
        table=aws.resources.table,
        caps=BudgetCaps(chat_daily_usd=1.0),
        tenant="default",
        clock=lambda: just_after_midnight,
    )
    report = _command("cost", aws, budgets=ledger, user_id=42)
    assert "Days and months are UTC; today ends in 24 h 0 min." in report
