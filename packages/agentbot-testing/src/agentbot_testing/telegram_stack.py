"""The Telegram path on this machine for tests: producer → moto FIFO → consumer → runtime stub
(behind LocalLambda, reached by the consumer's real boto3 invoke) → LocalTelegram."""

from __future__ import annotations

import functools
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from local_stack import (
    TEST_BOT_TOKEN,
    FunctionSpec,
    LocalLambda,
    LocalTelegram,
    ModelServer,
    SqsEventSource,
    sqs_lambda_event,
)
from session_core import (
    DEFAULT_RUNTIME_MEMORY_MB,
    MAX_RECEIVE_COUNT,
    Approvals,
    AttemptMarks,
    BudgetLedger,
    ChatBacklog,
    CommentAlbums,
    DynamoTable,
    LiveTurns,
    PasteParts,
    SessionRegistry,
)
from sqs_consumer import (
    Consumer,
    ConsumerConfig,
    ConsumerDeps,
    ConsumerTiming,
    RuntimeClient,
    runtime_client_config,
    voice_transcriber,
)
from telegram_core import (
    BotApi,
    ChatSettings,
    DeliveryClaims,
    DeliveryLog,
    MovedChats,
    RateLimiter,
    UpdateDedup,
)
from telegram_producer import Producer
from telegram_producer import handler as producer_handler

from agentbot_testing.telegram_support import BOT_USERNAME, WEBHOOK_SECRET, webhook_event

RUNTIME_FUNCTION = "agentbot-runtime"
CONSUMER_FUNCTION = "agentbot-consumer"


@dataclass
class TelegramStack:
    aws: Any
    telegram: LocalTelegram
    runtime: LocalLambda
    state: Path
    producer: Producer
    http: httpx.Client
    consumers: list[Consumer] = field(default_factory=list)
    model: ModelServer | None = None  # with the real runtime: the scripted model it calls
    log_path: Path | None = None  # with the real runtime: its log

    def consumer(
        self,
        *,
        typing_interval_s: float = 4.0,
        max_retry_after_s: float = 30.0,
        dynamodb: Any = None,
        s3: Any = None,
        sqs: Any = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        **timing: Any,
    ) -> Consumer:
        """An in-process Consumer wired like sqs_consumer.handler, with short back-offs and
        busy polls (``timing`` overrides Consumer's timing knobs; ``dynamodb`` the registry's
        and the comment albums' client; ``s3`` the bucket's; ``sqs`` the queues' (retries,
        requeues, dead letters); ``clock`` the budgets' clock;
        ``sleep`` every wait the consumer chooses, e.g. to record them)."""
        config = ConsumerConfig.from_env()
        timing = {"busy_poll_s": 0.2, "record_retry_backoff_s": 0.05, **timing}
        budgets = (
            BudgetLedger(
                dynamodb=self.aws.dynamodb,
                table=self.aws.resources.table,
                caps=config.budgets,
                tenant=config.tenant,
                clock=clock,
            )
            if config.budgets.any_period_cap
            else None
        )
        deps = ConsumerDeps(
            registry=SessionRegistry(dynamodb=dynamodb or self.aws.dynamodb, table=self.aws.resources.table),
            deliveries=DeliveryLog(self.records(dynamodb)),
            chat_settings=ChatSettings(self.records(dynamodb)),
            runtime=RuntimeClient(
                lambda_client=boto3.client("lambda", config=runtime_client_config()),
                function_name=config.runtime_function_name,
            ),
            bot=BotApi(
                http=self.http,
                token=TEST_BOT_TOKEN,
                base_url=self.telegram.base_url,
                backoff_s=0.05,
                max_retry_after_s=max_retry_after_s,
            ),
            s3=s3 or self.aws.s3,
            sqs=sqs or self.aws.sqs,
            budgets=budgets,
            backlog=ChatBacklog(
                dynamodb=self.aws.dynamodb, table=self.aws.resources.table, limit=config.chat_queue_limit
            ),
            live_turns=LiveTurns(dynamodb=self.aws.dynamodb, table=self.aws.resources.table),
            progress_budget=RateLimiter(
                dynamodb=self.aws.dynamodb, table=self.aws.resources.table, tenant=config.tenant
            ),
            delivery_claims=DeliveryClaims(self.records(dynamodb)),
            approvals=self.approvals(),
            albums=CommentAlbums(
                dynamodb=dynamodb or self.aws.dynamodb, table=self.aws.resources.table, retention_days=1
            ),
            pastes=PasteParts(dynamodb=self.aws.dynamodb, table=self.aws.resources.table, retention_days=1),
            voices=voice_transcriber(config, s3 or self.aws.s3),
            attempts=AttemptMarks(
                dynamodb=dynamodb or self.aws.dynamodb, table=self.aws.resources.table, retention_days=1
            ),
            moved_chats=MovedChats(self.records(dynamodb)),
            sleep=sleep,
        )
        return Consumer(config, deps, ConsumerTiming(typing_interval_s=typing_interval_s, **timing))

    def approvals(self) -> Approvals:
        """[I] The store of pending approvals and grants (as the producer and runtime see it)."""
        return Approvals(dynamodb=self.aws.dynamodb, table=self.aws.resources.table)

    def registry(self) -> SessionRegistry:
        return SessionRegistry(dynamodb=self.aws.dynamodb, table=self.aws.resources.table)

    def records(self, dynamodb: Any = None) -> DynamoTable:
        """The registry's table for the Telegram side's records (telegram_core)."""
        return DynamoTable(dynamodb=dynamodb or self.aws.dynamodb, table=self.aws.resources.table)

    def update_dedup(self) -> UpdateDedup:
        return UpdateDedup(self.records())

    def post(self, update: dict[str, Any]) -> int:
        """Deliver a webhook call through the producer; returns the HTTP status."""
        return int(self.producer.handle_event(webhook_event(update))["statusCode"])

    def kill_the_runtime(self) -> None:
        """Every runtime container goes: the next invocation starts a new one (a cold restore)."""
        for pid in self.runtime.process_ids:
            os.kill(pid, signal.SIGKILL)

    def runs(self) -> list[dict[str, Any]]:
        """Model runs of the runtime stub, in the order they started."""
        path = self.state / "runs.jsonl"
        if not path.exists():
            return []
        runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return sorted(runs, key=lambda r: r["started"])

    def receive(self, max_messages: int = 10) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.aws.sqs.receive_message(
            QueueUrl=self.aws.resources.queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=0,
            VisibilityTimeout=60,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return messages

    def receive_for_the_last_time(self) -> dict[str, Any]:
        """Receive the only queued record until SQS counts its last receive (maxReceiveCount)."""
        for _ in range(MAX_RECEIVE_COUNT - 1):
            [raw] = self.receive()
            self.aws.sqs.change_message_visibility(
                QueueUrl=self.aws.resources.queue_url, ReceiptHandle=raw["ReceiptHandle"], VisibilityTimeout=0
            )
        [raw] = self.receive()
        assert raw["Attributes"]["ApproximateReceiveCount"] == str(MAX_RECEIVE_COUNT)
        return raw

    def drain(self, consumer: Consumer, *, rounds: int = 100) -> list[dict[str, Any]]:
        """Act as Lambda's event source until the queue is empty: receive a batch, hand it to
        the consumer, delete what succeeded, make the failures visible again at once."""
        responses = []
        for _ in range(rounds):
            messages = self.receive()
            if not messages:
                break
            responses.append(self.hand_over(consumer, messages))
        return responses

    def hand_over(
        self,
        consumer: Consumer,
        messages: list[dict[str, Any]],
        *,
        keep_retry_delays: bool = False,
        remaining_time_ms: Callable[[], int] | None = None,
    ) -> dict[str, Any]:
        """Hand ``messages`` (received already, as Lambda's poller takes them before the
        consumer runs) to the consumer as one batch; delete what succeeded, make the failures
        visible again at once (``keep_retry_delays``: leave them hidden for the delay the
        consumer set, as Lambda's event source does; ``remaining_time_ms``: the invocation's,
        as Lambda's context gives it). Answers the batch response."""
        event = sqs_lambda_event(
            messages, queue_arn=self.aws.resources.queue_arn, region=self.aws.sqs.meta.region_name
        )
        response: dict[str, Any] = dict(consumer.handle_batch(event, remaining_time_ms=remaining_time_ms))
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] in failed:
                if keep_retry_delays:
                    continue
                self.aws.sqs.change_message_visibility(
                    QueueUrl=self.aws.resources.queue_url,
                    ReceiptHandle=m["ReceiptHandle"],
                    VisibilityTimeout=0,
                )
            else:
                self.aws.sqs.delete_message(
                    QueueUrl=self.aws.resources.queue_url, ReceiptHandle=m["ReceiptHandle"]
                )
        return response

    def dead_letters(self) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = self.aws.sqs.receive_message(
            QueueUrl=self.aws.resources.dlq_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return got

    def replies(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        return self.telegram.sent_messages(chat_id)


@contextmanager
def telegram_stack(
    aws: Any,
    tmp_path: Path,
    monkeypatch: Any,
    *,
    runtime_spec: FunctionSpec | None = None,
    runtime_log: Any = None,
    **telegram_kwargs: Any,
) -> Iterator[TelegramStack]:
    """The path with the runtime stub, or ``runtime_spec`` (e.g. the real runtime handler)
    writing its output to ``runtime_log``."""
    state = tmp_path / "runtime-state"
    state.mkdir()
    ssm = aws.client("ssm")
    prefix = f"/agentbot/test-{uuid.uuid4().hex[:8]}"
    ssm.put_parameter(Name=f"{prefix}/webhook-secret", Value=WEBHOOK_SECRET, Type="SecureString")
    ssm.put_parameter(Name=f"{prefix}/bot-token", Value=TEST_BOT_TOKEN, Type="SecureString")
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", f"{prefix}/webhook-secret")
    monkeypatch.setenv("BOT_TOKEN_PARAMETER", f"{prefix}/bot-token")
    monkeypatch.setenv("BOT_USERNAME", BOT_USERNAME)
    # Tests post many messages from one user within a minute; the rate-limit tests set their own.
    monkeypatch.setenv("RATE_LIMIT_USER_PER_MINUTE", "0")
    monkeypatch.setenv("RATE_LIMIT_CHAT_PER_MINUTE", "0")
    monkeypatch.setenv("CHAT_QUEUE_LIMIT", "0")
    monkeypatch.setenv("RUNTIME_FUNCTION_NAME", RUNTIME_FUNCTION)
    runtime_spec = runtime_spec or FunctionSpec(
        handler="agentbot_testing.telegram_stub_runtime.handle",
        env={"STUB_RUNTIME_DIR": str(state)},
        timeout_s=60,
        max_concurrency=2,
    )
    with (
        LocalTelegram(**telegram_kwargs) as telegram,
        LocalLambda({RUNTIME_FUNCTION: runtime_spec}, log=runtime_log) as runtime,
    ):
        monkeypatch.setenv("TELEGRAM_API_BASE", telegram.base_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", runtime.endpoint)
        yield TelegramStack(aws, telegram, runtime, state, producer_handler.build_producer(), _http())


@contextmanager
def consumer_function(
    stack: TelegramStack, *, timeout_s: float = 60, max_concurrency: int = 2
) -> Iterator[LocalLambda]:
    """The real consumer, ``sqs_consumer.handler.handle``, as its own awslambdaric processes
    behind a local Lambda service (``CONSUMER_FUNCTION``), invoking ``stack``'s runtime."""
    spec = FunctionSpec(
        handler="sqs_consumer.handler.handle",
        env={"AWS_ENDPOINT_URL_LAMBDA": stack.runtime.endpoint},  # the runtime's service
        timeout_s=timeout_s,
        max_concurrency=max_concurrency,
    )
    with LocalLambda({CONSUMER_FUNCTION: spec}) as functions:
        yield functions


def consumer_event_source(stack: TelegramStack, functions: LocalLambda, **options: Any) -> SqsEventSource:
    """Lambda's SQS event source over ``stack``'s queue, handing batches to the consumer of
    ``functions`` (``consumer_function``); ``options``: SqsEventSource's. Not started."""
    aws = stack.aws
    return SqsEventSource(
        sqs_client=aws.sqs,
        lambda_client=consumer_invoker(functions),
        queue_url=aws.resources.queue_url,
        queue_arn=aws.resources.queue_arn,
        function_name=CONSUMER_FUNCTION,
        **options,
    )


def consumer_invoker(functions: LocalLambda) -> Any:
    """A Lambda client of the consumer's local service, as the event source's."""
    return boto3.client("lambda", endpoint_url=functions.endpoint, config=runtime_client_config())


@contextmanager
def real_runtime_stack(
    aws: Any,
    tmp_path: Path,
    monkeypatch: Any,
    *,
    config: Path,
    responder: Callable[[dict[str, Any]], Any],
    runtime_env: Mapping[str, str] | None = None,
    runtime_memory_mb: int = DEFAULT_RUNTIME_MEMORY_MB,
    **telegram_kwargs: Any,
) -> Iterator[TelegramStack]:
    """The path with the real runtime (awslambdaric, the real CLI with claude-config ``config``)
    and a scripted model answering with ``responder``; ``stack.model`` is that model server,
    ``stack.log_path`` the runtime's log; ``runtime_env``: more of the runtime's settings;
    ``runtime_memory_mb``: the function's memory, as Lambda tells it (what history it loads)."""
    key_parameter = f"/agentbot/test-{uuid.uuid4().hex[:8]}/anthropic-key"
    aws.client("ssm").put_parameter(Name=key_parameter, Value="sk-ant-test-live", Type="SecureString")
    log_path = tmp_path / "runtime.log"
    with ModelServer(responder) as model, log_path.open("a") as log:
        env = {
            "ANTHROPIC_API_KEY_PARAMETER": key_parameter,
            "ANTHROPIC_BASE_URL": model.base_url,
            "SESSIONS_ROOT": str(tmp_path / "sessions"),
            "CLAUDE_CONFIG_PATH": str(config),
            "DEEPWIKI_MCP_URL": "http://127.0.0.1:9/mcp",
            "MODEL_MAX_RETRIES": "0",
            **(runtime_env or {}),
        }
        spec = FunctionSpec(
            handler="agent_runtime.handler.handle",
            env=env,
            timeout_s=120,
            max_concurrency=2,
            memory_mb=runtime_memory_mb,
        )
        with telegram_stack(
            aws, tmp_path, monkeypatch, runtime_spec=spec, runtime_log=log, **telegram_kwargs
        ) as stack:
            stack.model = model
            stack.log_path = log_path
            yield stack


@functools.cache
def _http() -> httpx.Client:
    """One client per test process: each new one loads the CA bundle (~30 ms of CPU). Every
    stack's Bot API server has a port of its own, so no connection is shared between tests."""
    return httpx.Client(timeout=10)


def wait_until(predicate: Any, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
