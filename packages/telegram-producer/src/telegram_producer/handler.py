"""Lambda entry point: ``telegram_producer.handler.handle`` (API Gateway HTTP API, payload 2.0).

The container's Producer is built on the first call: settings from the environment and the
webhook secret from SSM (read again when a call brings another one, at most every 30 s: the
operator rotated it). Without a usable secret it raises ConfigError on every call (the
function errors, API Gateway answers 5xx); it never accepts updates unauthenticated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import boto3
from telegram_core import MovedChats, RateLimiter

from ._config import ProducerConfig
from ._webhook import Producer, check_secret

_producer: Producer | None = None


def build_producer(*, secret_clock: Callable[[], float] = time.monotonic) -> Producer:
    """Build the container's Producer from the environment (raises ConfigError naming a setting).
    ``secret_clock`` spaces the webhook secret's SSM reads (tests pass a clock they move)."""
    from session_core import (
        AlbumParts,
        Approvals,
        ChatBacklog,
        DynamoTable,
        LiveTurnsWithBacklog,
        PasteParts,
        RotatingSecret,
        configure_logging,
        make_non_dumpable,
        report_secret_access_denied,
    )
    from telegram_core import UpdateDedup

    # This process is about to hold the webhook secret: no other process of its user may read it.
    make_non_dumpable()
    configure_logging()
    config = ProducerConfig.from_env()
    # Anyone may send a wrong secret: a cold container's first read counts against the interval.
    secret = RotatingSecret(
        boto3.client("ssm"),
        config.secret_parameter,
        check=check_secret,
        clock=secret_clock,
        first_read_counts=True,
        on_denied=lambda exc: report_secret_access_denied(
            exc, setting="WEBHOOK_SECRET_PARAMETER", tenant=config.tenant
        ),
    )
    dynamodb = boto3.client("dynamodb")
    backlog = ChatBacklog(dynamodb=dynamodb, table=config.table, limit=config.chat_queue_limit)
    approvals = Approvals(dynamodb=dynamodb, table=config.table, retention_days=config.retention_days)
    registry_table = DynamoTable(dynamodb=dynamodb, table=config.table, retention_days=config.retention_days)
    return Producer(
        config=config,
        secret=secret,
        sqs=boto3.client("sqs"),
        registry=UpdateDedup(registry_table),
        rate_limiter=RateLimiter(
            dynamodb=dynamodb,
            table=config.table,
            tenant=config.tenant,
            per_user=config.rate_limit_user_per_minute,
            per_chat=config.rate_limit_chat_per_minute,
        ),
        backlog=backlog,
        # A /stop with no turn running is kept while an allowed call waits for its turn, or the
        # backlog counts a message of the chat.
        stops=LiveTurnsWithBacklog(
            dynamodb=dynamodb,
            table=config.table,
            retention_days=config.retention_days,
            backlog=backlog,
            approvals=approvals,
        ),
        approvals=approvals,
        albums=AlbumParts(dynamodb=dynamodb, table=config.table, retention_days=1),
        pastes=PasteParts(dynamodb=dynamodb, table=config.table, retention_days=1),
        moved_chats=MovedChats(registry_table),
    )


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answer one webhook call.

    A webhook secret SSM refuses to the role (its KMS key, say) is reported as a configuration
    error on every call (log line ``config.invalid``, the ConfigurationErrors metric), and
    raised as an outage is: API Gateway answers 5xx, so Telegram sends the update again, and
    nothing is kept: a role's new permissions take seconds to reach it."""
    global _producer
    if _producer is None:
        from session_core import SecretAccessDeniedError, report_secret_access_denied

        try:
            _producer = build_producer()
        except SecretAccessDeniedError as exc:
            tenant = os.environ.get("TENANT") or "default"
            report_secret_access_denied(exc, setting="WEBHOOK_SECRET_PARAMETER", tenant=tenant)
            raise
    return _producer.handle_event(event, request_id=getattr(context, "aws_request_id", None))
