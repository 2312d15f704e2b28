"""Lambda entry point: ``sqs_consumer.handler.handle`` (SQS event source, partial batch response).

The container's Consumer is built on the first call: settings from the environment, the
bot token from SSM, boto3 clients (the runtime's with a long read timeout and no retries).
"""

from __future__ import annotations

from typing import Any

import boto3
import httpx

from ._config import ConsumerConfig
from ._consumer import Consumer
from ._runtime import RuntimeClient, runtime_client_config
from ._telegram import BotApi

_consumer: Consumer | None = None


def build_consumer() -> Consumer:
    """Build the container's Consumer from the environment (ConfigError names a bad setting)."""
    from session_core import BudgetLedger, SessionRegistry, configure_logging, make_non_dumpable, read_secret

    # This process is about to hold the bot token: no other process of its user may read it.
    make_non_dumpable()
    configure_logging()
    config = ConsumerConfig.from_env()
    token = read_secret(boto3.client("ssm"), config.bot_token_parameter)
    http = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
    dynamodb = boto3.client("dynamodb")
    budgets = (
        BudgetLedger(dynamodb=dynamodb, table=config.table, caps=config.budgets, tenant=config.tenant)
        if config.budgets.any_period_cap
        else None
    )
    return Consumer(
        config=config,
        registry=SessionRegistry(
            dynamodb=dynamodb,
            table=config.table,
            retention_days=config.retention_days,
        ),
        runtime=RuntimeClient(
            lambda_client=boto3.client("lambda", config=runtime_client_config()),
            function_name=config.runtime_function_name,
        ),
        bot=BotApi(http=http, token=token, base_url=config.telegram_api_base),
        s3=boto3.client("s3"),
        sqs=boto3.client("sqs"),
        budgets=budgets,
    )


def handle(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Process one batch of queue records within the invocation's remaining time."""
    global _consumer
    if _consumer is None:
        _consumer = build_consumer()
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return _consumer.handle_batch(event, remaining_time_ms=remaining)
