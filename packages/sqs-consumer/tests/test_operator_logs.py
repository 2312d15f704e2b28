"""What an operator reads in the consumer's JSON log lines: one update followed by its
``update_id`` and ``session_key``, also on lines written by the helpers that run beside the turn
(the "typing…" refreshes, the live view); no warning about something the deployment does not
use. Real queue and table (moto), a Bot API server on 127.0.0.1, runtime stand-ins."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from agentbot_testing import FaultProxy, older_consumer_settling_before_each_catch_up
from agentbot_testing.telegram_support import answered, queue_inbound
from local_stack import LocalTelegram, TelegramFault, sqs_lambda_event
from session_core import (
    BudgetCaps,
    BudgetLedger,
    SessionKey,
    StorageError,
    TurnRequest,
    TurnResult,
    bind_correlation,
    configure_logging,
)
from sqs_consumer import Consumer, ConsumerTiming
from sqs_consumer._chunk_claims import ChunkClaimer
from telegram_core import ClaimVerdict, InboundMessage

KEY = SessionKey(tenant="default", chat_id=-100640, thread_id=0)


class SlowRuntime:
    """Answers after a while, so the "typing…" refreshes run a few times meanwhile."""

    def run_turn(self, request: TurnRequest) -> TurnResult:
        time.sleep(0.5)
        return answered(request, "Here it is.")


class CrashingRuntime:
    """The invocation fails without an answer, after the turn may have run."""

    def run_turn(self, request: TurnRequest) -> TurnResult:
        raise RuntimeError("the connection to the runtime was reset")


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def queue_message(aws: Any, update_id: int) -> None:
    queue_inbound(
        aws.sqs,
        aws.resources.queue_url,
        InboundMessage(
            update_id=update_id,
            session_key=KEY.canonical,
            kind="message",
            chat_id=KEY.chat_id,
            chat_type="supergroup",
            message_id=9,
            user_id=77,
            text="what is new?",
            sent_at=int(time.time()),
        ),
    )


def run_once(aws: Any, worker: Consumer) -> None:
    messages = aws.sqs.receive_message(
        QueueUrl=aws.resources.queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    worker.handle_batch(
        sqs_lambda_event(messages, queue_arn=aws.resources.queue_arn, region=aws.sqs.meta.region_name)
    )


def test_a_typing_refusal_is_logged_with_the_update_and_chat_it_was_for(
    aws: Any, telegram: LocalTelegram, make_consumer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Telegram refuses the refreshes of "typing…" (a flood limit, say): each refusal the
    consumer logs names the update and the chat, or the operator cannot tell whose it was."""
    telegram.inject("sendChatAction", TelegramFault.server_error(), times=100)
    queue_message(aws, 641)
    configure_logging(json_lines=True)
    run_once(aws, make_consumer(SlowRuntime(), timing=ConsumerTiming(typing_interval_s=0.1)))

    refused = [line for line in json_lines(capsys.readouterr().err) if line["event"] == "typing_failed"]
    assert len(refused) >= 2  # the first "typing…" and at least one refresh
    assert {(line.get("update_id"), line.get("session_key")) for line in refused} == {(641, KEY.canonical)}


def test_a_failed_invocation_warns_of_no_budget_hold_where_no_budget_is_set(
    aws: Any, make_consumer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without budgets nothing is held: a warning that a hold is kept sends the operator
    looking for a budget the deployment does not have."""
    queue_message(aws, 642)
    configure_logging(json_lines=True)
    run_once(aws, make_consumer(CrashingRuntime()))
    events = [line["event"] for line in json_lines(capsys.readouterr().err)]
    assert "record_retry" in events
    assert "budget_hold_kept" not in events


def test_a_budget_hold_an_older_consumer_keeps_changing_is_logged_naming_the_budget(
    aws: Any, make_consumer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hold fails as a transient StorageError while an older consumer still counts the
    user's account (a deploy under way): each retry's line, and the dead letter's when it never
    passes, must name the budget hold, or the operator reads "StorageError" and nothing to go
    on. (AWS's own message is never logged: it may quote an item's values.)"""
    account = {
        "pk": {"S": "budget|user|default|77"},
        "sk": {"S": "day|" + datetime.now(UTC).strftime("%Y-%m-%d")},
    }
    aws.dynamodb.put_item(TableName=aws.resources.table, Item={**account, "spent_usd": {"N": "2.5"}})

    race = older_consumer_settling_before_each_catch_up(aws, account)
    caps = BudgetCaps(user_daily_usd=3.0, turn_usd=0.3)
    queue_message(aws, 644)
    configure_logging(json_lines=True)
    with FaultProxy(aws.endpoint, services=aws.endpoints.services, faults=[race]) as proxy:
        budgets = BudgetLedger(
            dynamodb=proxy.client("dynamodb"), table=aws.resources.table, caps=caps, tenant="default"
        )
        run_once(aws, make_consumer(SlowRuntime(), config={"budgets": caps}, deps={"budgets": budgets}))

    retried = [line for line in json_lines(capsys.readouterr().err) if line["event"] == "record_retry"]
    assert len(retried) == 1
    assert "budget.hold" in retried[0]["error"]
    assert "ConditionalCheckFailedException" in retried[0]["error"]


class ClaimsThatFailToRenew:
    """DeliveryClaims' verbs: the first claim of a chunk is granted, a renewal fails."""

    def __init__(self) -> None:
        self.claimed: set[int] = set()

    def claim(self, key: SessionKey, update_id: int, index: int, *, claimant: str) -> ClaimVerdict:
        if index in self.claimed:
            raise StorageError("claim", "throttled", error_code="ProvisionedThroughputExceededException")
        self.claimed.add(index)
        return "claimed"

    def release(self, key: SessionKey, update_id: int, index: int, *, claimant: str) -> None:
        pass


def test_a_chunk_claim_not_renewed_during_a_slow_send_is_logged_with_its_update_and_chat(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json_lines=True)
    bind_correlation(update_id=643, session_key=KEY.canonical, request_id="record-643")
    claimer = ChunkClaimer(ClaimsThatFailToRenew(), KEY, 643, hold_s=0.3)
    assert claimer.claim(0)
    with claimer.sending(0):
        time.sleep(0.5)  # a slow send: the claim is renewed meanwhile, and that fails

    failed = [
        line for line in json_lines(capsys.readouterr().err) if line["event"] == "chunk_claim_not_renewed"
    ]
    assert failed, "no renewal failed"
    assert {(line.get("update_id"), line.get("session_key")) for line in failed} == {(643, KEY.canonical)}
