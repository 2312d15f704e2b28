"""Fixtures the consumer's tests share: a local Telegram Bot API server, an HTTP client, and
a Consumer built on the test stack and that Telegram."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
from local_stack import TEST_BOT_TOKEN, LocalTelegram
from session_core import AttemptMarks, DynamoTable, SessionRegistry
from sqs_consumer import Consumer, ConsumerConfig, ConsumerDeps, ConsumerTiming
from telegram_core import BotApi, ChatSettings, DeliveryLog


@pytest.fixture
def telegram() -> Iterator[LocalTelegram]:
    with LocalTelegram() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


MakeConsumer = Callable[..., Consumer]


@pytest.fixture
def make_consumer(aws: Any, telegram: LocalTelegram, http: httpx.Client) -> MakeConsumer:
    """``make_consumer(runtime, config={...}, deps={...}, timing=..., dynamodb=...)``: a
    Consumer of the test stack's table, bucket and queues that answers through ``telegram``;
    ``config`` and ``deps`` replace the named fields of its ConsumerConfig and ConsumerDeps;
    ``dynamodb``: the client its table's records are reached through (a recording one, say)."""

    def make(
        runtime: Any,
        *,
        config: Mapping[str, Any] | None = None,
        deps: Mapping[str, Any] | None = None,
        timing: ConsumerTiming | None = None,
        dynamodb: Any = None,
    ) -> Consumer:
        res = aws.resources
        dynamodb = dynamodb or aws.dynamodb
        records = DynamoTable(dynamodb=dynamodb, table=res.table)
        settings = ConsumerConfig(
            **{
                "runtime_function_name": "agentbot-runtime",
                "bot_token_parameter": "/agentbot/bot-token",
                "table": res.table,
                "bucket": res.bucket,
                "dead_letter_queue_url": res.dlq_url,
                "inbound_queue_url": res.queue_url,
                "telegram_api_base": telegram.base_url,
                **(config or {}),
            }
        )
        parts = ConsumerDeps(
            **{
                "registry": SessionRegistry(dynamodb=dynamodb, table=res.table),
                "deliveries": DeliveryLog(records),
                "chat_settings": ChatSettings(records),
                "runtime": runtime,
                "bot": BotApi(http=http, token=TEST_BOT_TOKEN, base_url=telegram.base_url, backoff_s=0.01),
                "s3": aws.s3,
                "sqs": aws.sqs,
                "attempts": AttemptMarks(dynamodb=dynamodb, table=res.table, retention_days=1),
                **(deps or {}),
            }
        )
        return Consumer(
            settings, parts, timing or ConsumerTiming(record_retry_backoff_s=0.01, retry_base_delay_s=0)
        )

    return make
