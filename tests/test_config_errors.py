"""A permanent configuration error through the real path: producer → queue → consumer → the real
runtime handler (awslambdaric, real CLI, scripted model). The operator is told once (log line and
metric), each user gets one short notice, nothing is retried and nothing reaches the DLQ; a
transient model failure keeps its retries."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_stack import FunctionSpec, ModelFault, ModelServer, demo_responder
from sqs_consumer import MISCONFIGURED_NOTICE

pytestmark = pytest.mark.slow
TESTS_DIR = Path(__file__).parent
REPO_CONFIG = TESTS_DIR.parent / "claude-config"
FIRST_KEY = "sk-ant-test-config"


@pytest.fixture
def key_parameter() -> str:
    """This test's own SSM parameter for the model key. The xdist workers share one moto server:
    with one name for every test, a neighbour's rotation (or its fixture putting FIRST_KEY back)
    reached this test's runtime between its key's first read and its refusal, and the refused call
    was sent again with the other value."""
    return f"/agentbot/test-{uuid.uuid4().hex[:8]}/anthropic-key"


@pytest.fixture
def real_runtime(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_parameter: str
) -> Iterator[Any]:
    """``start(config_dir)`` → the Telegram path with the real runtime on that claude-config."""
    from agentbot_testing.telegram_stack import telegram_stack

    aws.client("ssm").put_parameter(Name=key_parameter, Value=FIRST_KEY, Type="SecureString")
    log_path = tmp_path / "runtime.log"
    with ModelServer(demo_responder) as model, log_path.open("a") as log:

        def start(config_dir: Path) -> Any:
            env = {
                "ANTHROPIC_API_KEY_PARAMETER": key_parameter,
                "ANTHROPIC_BASE_URL": model.base_url,
                "SESSIONS_ROOT": str(tmp_path / "sessions"),
                "CLAUDE_CONFIG_PATH": str(config_dir),
                "DEEPWIKI_MCP_URL": "http://127.0.0.1:9/mcp",
                "MODEL_MAX_RETRIES": "0",
            }
            spec = FunctionSpec(
                handler="agent_runtime.handler.handle", env=env, timeout_s=120, max_concurrency=1
            )
            return telegram_stack(aws, tmp_path, monkeypatch, runtime_spec=spec, runtime_log=log)

        yield start, model, log_path


def broken_config(tmp_path: Path) -> Path:
    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config)
    agents = json.loads((config / "agents.json").read_text())
    agents["agents"]["summarizer"]["tools"] = ["Read", "mcp__nowhere__search"]
    (config / "agents.json").write_text(json.dumps(agents))
    return config


def metric_lines(log_path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log_path.read_text().splitlines():
        if '"ConfigurationErrors"' in line and line.lstrip().startswith("{"):
            try:
                record = json.loads(line[line.index("{") :])
            except ValueError:
                continue
            if "_aws" in record:
                lines.append(record)
    return lines


def sent_key(call: Any) -> str:
    """The key a model call reached the model with."""
    return str({name.lower(): value for name, value in call.headers.items()}["x-api-key"])


def post_texts(stack: Any, texts: list[str], *, chat_id: int = 4242) -> None:
    from agentbot_testing.telegram_support import update

    for offset, text in enumerate(texts):
        sent = update(
            chat_id * 10 + offset, message_id=20 + offset, chat_id=chat_id, user_id=chat_id, text=text
        )
        assert stack.post(sent) == 200


def test_malformed_agents_json_is_reported_once_and_never_retried(real_runtime, tmp_path: Path) -> None:
    start, model, log_path = real_runtime
    with start(broken_config(tmp_path)) as stack:
        post_texts(stack, ["hello", "are you there?"])
        consumer = stack.consumer()
        responses = stack.drain(consumer)
        dead = stack.dead_letters()
        replies = [m["text"] for m in stack.replies(4242)]

    assert all(not r["batchItemFailures"] for r in responses), responses  # no retry
    assert dead == []
    assert replies == [MISCONFIGURED_NOTICE, MISCONFIGURED_NOTICE]
    assert model.model_calls == []
    log = log_path.read_text()
    # One report per container, naming the file and the field to fix.
    assert log.count("config.invalid") == 1, log
    assert "agents.json: agents.summarizer.tools[1]" in log
    assert "mcp__nowhere__search" in log
    metrics = metric_lines(log_path)
    assert len(metrics) == 1 and metrics[0]["ConfigurationErrors"] == 1
    assert metrics[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Agentbot"


def test_model_refusing_the_key_is_permanent_but_a_5xx_keeps_its_retries(real_runtime) -> None:
    start, model, log_path = real_runtime
    with start(REPO_CONFIG) as stack:
        model.inject(ModelFault(status=401), times=2)
        post_texts(stack, ["first", "second"])
        consumer = stack.consumer(retry_base_delay_s=0)
        refused = stack.drain(consumer)
        notices = [m["text"] for m in stack.replies(4242)]
        refused_keys = [sent_key(call) for call in model.model_calls]

        model.inject(ModelFault(status=503), times=1)
        post_texts(stack, ["third"], chat_id=5151)
        retried = stack.drain(consumer)
        answer = [m["text"] for m in stack.replies(5151)]
        dead = stack.dead_letters()

    assert all(not r["batchItemFailures"] for r in refused), refused
    assert notices == [MISCONFIGURED_NOTICE, MISCONFIGURED_NOTICE]
    # One model call per message, with the key the runtime read: no retry, no other key.
    assert refused_keys == [FIRST_KEY, FIRST_KEY]
    assert len(metric_lines(log_path)) == 1  # reported once per container
    assert "the model answered 401" in log_path.read_text()
    # The fix line says a new key in SSM needs no redeploy.
    assert "running containers use it from their next refused call" in log_path.read_text()
    # The 503 is transient: the record came back and was answered on its retry.
    assert any(r["batchItemFailures"] for r in retried), retried
    assert len(answer) == 1 and answer[0] != MISCONFIGURED_NOTICE and "demo" in answer[0]
    assert dead == []


def test_a_key_rotated_in_ssm_reaches_the_warm_runtime_without_a_redeploy(
    aws: Any, real_runtime, key_parameter: str
) -> None:
    """Operators rotate the model key without redeploying: the new key goes into SSM, then the
    API refuses the old one. The warm runtime read the old key when it started; on the refusal
    it reads the parameter again and sends the refused call once more, with the new key. Every
    turn is answered: nobody hears "the bot is misconfigured" and no alarm fires."""
    from agentbot_testing.telegram_support import update

    rotated_key = "sk-ant-test-rotated"
    start, model, log_path = real_runtime
    model.accepted_key = FIRST_KEY
    with start(REPO_CONFIG) as stack:
        consumer = stack.consumer(retry_base_delay_s=0)
        outcomes = []
        for turn, text in enumerate(["before the rotation", "right after it", "and later"]):
            if turn == 1:
                aws.client("ssm").put_parameter(
                    Name=key_parameter, Value=rotated_key, Type="SecureString", Overwrite=True
                )
                model.accepted_key = rotated_key
            stack.post(update(900 + turn, message_id=30 + turn, chat_id=4242, user_id=4242, text=text))
            outcomes += stack.drain(consumer)
        replies = [m["text"] for m in stack.replies(4242)]
        dead = stack.dead_letters()

    assert len(replies) == 3 and all("demo" in reply for reply in replies), replies
    assert all(not o["batchItemFailures"] for o in outcomes), outcomes
    assert dead == []
    # Only the call the API refused was sent again: one extra call, once.
    sent_keys = [sent_key(call) for call in model.model_calls]
    assert sent_keys == [FIRST_KEY, FIRST_KEY, rotated_key, rotated_key]
    log = log_path.read_text()
    assert "config.invalid" not in log and metric_lines(log_path) == []
    assert rotated_key not in log and FIRST_KEY not in log


OUT_OF_CREDIT = ModelFault(
    status=400,
    message="Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits.",
)
UNKNOWN_MODEL = ModelFault(status=404, error_type="not_found_error", message="model: claude-sonnet-9")


@pytest.mark.parametrize(
    ("fault", "fix"),
    [
        (OUT_OF_CREDIT, "{key_parameter} (ANTHROPIC_API_KEY_PARAMETER)"),
        (UNKNOWN_MODEL, "ANTHROPIC_MODEL (AnthropicModel)"),
    ],
    ids=["credit-balance-too-low", "model-not-found"],
)
def test_an_account_out_of_credit_or_an_unknown_model_is_the_operators_to_fix(
    real_runtime, key_parameter: str, fault: ModelFault, fix: str
) -> None:
    """Neither passes by itself: retried five times over minutes, each message ended in 'the
    model may be busy, try again in a minute' while the operator heard nothing."""
    start, model, log_path = real_runtime
    with start(REPO_CONFIG) as stack:
        model.inject(fault, times=20)
        post_texts(stack, ["first", "second"])
        consumer = stack.consumer(retry_base_delay_s=0)
        refused = stack.drain(consumer)
        notices = [m["text"] for m in stack.replies(4242)]
        model.clear_faults()  # the operator fixed it: the next message is answered
        post_texts(stack, ["third"], chat_id=5151)
        stack.drain(consumer)
        answer = [m["text"] for m in stack.replies(5151)]
        dead = stack.dead_letters()

    assert all(not r["batchItemFailures"] for r in refused), refused  # not retried
    assert notices == [MISCONFIGURED_NOTICE, MISCONFIGURED_NOTICE]
    assert dead == []
    reports = [
        json.loads(line[line.index("{") :])
        for line in log_path.read_text().splitlines()
        if '"config.invalid"' in line
    ]
    # Once per container, naming the setting.
    assert [r["fix"] for r in reports] == [fix.format(key_parameter=key_parameter)], reports
    assert len(metric_lines(log_path)) == 1  # the configuration-error alarm's metric
    assert len(answer) == 1 and "demo" in answer[0], answer


def test_the_consumer_without_its_bot_token_is_reported_once_and_leaves_records_for_the_dlq(
    aws: Any, tmp_path: Path
) -> None:
    """No token: nobody can be told, so the batch fails (Lambda retries it, then the queue's
    redrive policy keeps it in the DLQ for a redrive once fixed); the operator hears once."""
    from local_stack import LocalLambda, sqs_lambda_event
    from telegram_core import InboundMessage, QueueEnvelope, encode_envelope

    message = InboundMessage(
        update_id=1,
        session_key="default/42/0",
        kind="message",
        chat_id=42,
        chat_type="private",
        message_id=10,
        text="hi",
    )
    aws.sqs.send_message(
        QueueUrl=aws.resources.queue_url,
        MessageBody=encode_envelope(QueueEnvelope(version=1, message=message)).decode(),
        MessageGroupId="default/42/0",
        MessageDeduplicationId="u1",
    )
    received = aws.sqs.receive_message(
        QueueUrl=aws.resources.queue_url, MessageSystemAttributeNames=["All"], VisibilityTimeout=60
    )["Messages"]
    event = json.dumps(sqs_lambda_event(received, queue_arn=aws.resources.queue_arn, region="us-east-1"))
    env = {
        **aws.resources.environment(),
        "RUNTIME_FUNCTION_NAME": "agentbot-runtime",
        "BOT_TOKEN_PARAMETER": "/agentbot/test/config-errors/no-such-bot-token",
        "TENANT": "default",
    }
    log_path = tmp_path / "consumer.log"
    spec = {
        "consumer": FunctionSpec(
            handler="sqs_consumer.handler.handle", env=env, timeout_s=60, max_concurrency=1
        )
    }
    with log_path.open("a") as log, LocalLambda(spec, log=log) as lam:
        client = local_lambda_client(lam.endpoint)
        outcomes = [client.invoke(FunctionName="consumer", Payload=event.encode()) for _ in range(2)]

    assert all(o.get("FunctionError") for o in outcomes), outcomes
    text = log_path.read_text()
    assert text.count("config.invalid") == 1, text
    assert "/agentbot/test/config-errors/no-such-bot-token" in text
    assert len(metric_lines(log_path)) == 1


def local_lambda_client(endpoint: str) -> Any:
    from local_stack import local_client

    return local_client("lambda", endpoint)
