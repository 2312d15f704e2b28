"""Lambda entry point: ``sqs_consumer.handler.handle`` (SQS event source, partial batch response).

The container's Consumer is built on the first call: settings from the environment, the
bot token from SSM (read again when Telegram refuses it: the operator rotated it), boto3
clients (the runtime's with a long read timeout and no retries; the visibility heartbeat's
with short timeouts).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import boto3
import httpx
from telegram_core import BotApi

from ._config import ConsumerConfig
from ._consumer import Consumer
from ._deps import ConsumerDeps
from ._runtime import RuntimeClient, runtime_client_config
from ._visibility_heartbeat import heartbeat_client_config
from ._voice import voice_transcriber

_consumer: Consumer | None = None
_config_reported = False


def build_consumer(*, secret_clock: Callable[[], float] = time.monotonic) -> Consumer:
    """Build the container's Consumer from the environment (ConfigError names a bad setting).
    ``secret_clock`` spaces the bot token's SSM reads (tests pass a clock they move)."""
    from session_core import (
        Approvals,
        AttemptMarks,
        BudgetLedger,
        ChatBacklog,
        CommentAlbums,
        DynamoTable,
        LiveTurns,
        PasteParts,
        RotatingSecret,
        SessionRegistry,
        configure_logging,
        make_non_dumpable,
        report_secret_access_denied,
    )
    from telegram_core import ChatSettings, DeliveryClaims, DeliveryLog, MovedChats, RateLimiter

    # This process is about to hold the bot token: no other process of its user may read it.
    make_non_dumpable()
    configure_logging()
    config = ConsumerConfig.from_env()
    token = RotatingSecret(
        boto3.client("ssm"),
        config.bot_token_parameter,
        clock=secret_clock,
        on_denied=lambda exc: report_secret_access_denied(
            exc, setting="BOT_TOKEN_PARAMETER", tenant=config.tenant
        ),
    )
    token.current()  # a missing or empty parameter is a ConfigError naming it, now
    http = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
    dynamodb = boto3.client("dynamodb")
    s3 = boto3.client("s3")
    records = DynamoTable(dynamodb=dynamodb, table=config.table, retention_days=config.retention_days)
    budgets = (
        BudgetLedger(dynamodb=dynamodb, table=config.table, caps=config.budgets, tenant=config.tenant)
        if config.budgets.any_period_cap
        else None
    )
    deps = ConsumerDeps(
        registry=SessionRegistry(
            dynamodb=dynamodb,
            table=config.table,
            retention_days=config.retention_days,
        ),
        deliveries=DeliveryLog(records),
        chat_settings=ChatSettings(records),
        runtime=RuntimeClient(
            lambda_client=boto3.client("lambda", config=runtime_client_config()),
            function_name=config.runtime_function_name,
        ),
        bot=BotApi(http=http, token=token, base_url=config.telegram_api_base),
        s3=s3,
        sqs=boto3.client("sqs"),
        heartbeat_sqs=boto3.client("sqs", config=heartbeat_client_config()),
        budgets=budgets,
        backlog=ChatBacklog(dynamodb=dynamodb, table=config.table, limit=config.chat_queue_limit),
        live_turns=LiveTurns(dynamodb=dynamodb, table=config.table, retention_days=config.retention_days),
        progress_budget=RateLimiter(dynamodb=dynamodb, table=config.table, tenant=config.tenant),
        delivery_claims=DeliveryClaims(records),
        approvals=Approvals(dynamodb=dynamodb, table=config.table, retention_days=config.retention_days),
        albums=CommentAlbums(dynamodb=dynamodb, table=config.table, retention_days=1),
        pastes=PasteParts(dynamodb=dynamodb, table=config.table, retention_days=1),
        voices=voice_transcriber(config, s3),
        attempts=AttemptMarks(dynamodb=dynamodb, table=config.table, retention_days=1),
        moved_chats=MovedChats(records),
    )
    return Consumer(config, deps)


def handle(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Process one batch of queue records within the invocation's remaining time.

    A missing or malformed setting (the bot token's parameter, say) fails the batch: with no
    token nobody can be told, and the records reach the DLQ to be redriven once it is fixed.
    It is reported once per container (log line ``config.invalid`` and the
    ConfigurationErrors metric), like the runtime's configuration errors. A bot token SSM
    refuses to the role (its KMS key, say) is reported so on every try, yet the batch is
    retried and nothing is kept: a role's new permissions take seconds to reach it. The visibility
    heartbeat does not cover this failure, on purpose: nothing here is known to be right
    (not even INBOUND_QUEUE_URL), and the queue's 90-minute visibility timeout spreads the
    records' five receives over 7.5 hours, not 15 minutes, so a fix made within hours
    answers them without a redrive.
    """
    global _consumer, _config_reported
    if _consumer is None:
        from session_core import (
            ConfigError,
            SecretAccessDeniedError,
            report_config_problem,
            report_secret_access_denied,
        )

        tenant = os.environ.get("TENANT") or "default"
        try:
            _consumer = build_consumer()
        except SecretAccessDeniedError as exc:
            report_secret_access_denied(exc, setting="BOT_TOKEN_PARAMETER", tenant=tenant)
            raise
        except ConfigError as exc:
            if not _config_reported:
                _config_reported = True
                report_config_problem(exc.setting, exc.reason, tenant=tenant)
            raise
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return _consumer.handle_batch(event, remaining_time_ms=remaining)
