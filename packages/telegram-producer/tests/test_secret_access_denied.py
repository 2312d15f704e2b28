"""A webhook secret SSM will not give the producer's role (under a customer managed KMS key
while SecretsKmsKeyArn is unset, say) is told to the operator as a configuration error naming
the parameter and the setting, on every call; Telegram gets a 5xx (the function errors) and
sends the update again, and the same container accepts it once the role may read the secret.
The handler's own entry point, SSM (moto) behind agentbot's fault-injecting proxy."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from agentbot_testing import AwsFault, FaultProxy, json_log_lines, new_container_ssm
from agentbot_testing.telegram_support import BOT_USERNAME, WEBHOOK_SECRET, envelopes, update, webhook_event
from session_core import SECRET_REREAD_INTERVAL_S, StorageError
from telegram_producer import handler as producer_handler


@pytest.fixture
def parameter(aws: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"/agentbot/test-{uuid.uuid4().hex[:8]}/webhook-secret"
    aws.client("ssm").put_parameter(Name=name, Value=WEBHOOK_SECRET, Type="SecureString")
    monkeypatch.setenv("WEBHOOK_SECRET_PARAMETER", name)
    monkeypatch.setenv("BOT_USERNAME", BOT_USERNAME)
    return name


@pytest.fixture
def denying_ssm(aws: Any, parameter: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A new container reading SSM through a proxy (no fault yet); its JSON log lines are what
    Lambda would keep."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "agentbot-producer")  # JSON log lines
    monkeypatch.setattr(producer_handler, "_producer", None)
    with new_container_ssm(aws, monkeypatch) as proxy:
        yield proxy


def test_a_secret_the_role_may_not_decrypt_is_reported_on_every_call_and_telegram_sends_again(
    aws: Any, parameter: str, denying_ssm: FaultProxy, capsys: Any
) -> None:
    denying_ssm.faults = [
        AwsFault("ssm:GetParameter", status=400, code="AccessDeniedException", message="kms:Decrypt")
    ]
    event = webhook_event(update(7101, text="hi"))

    calls = []
    for _ in range(2):
        with pytest.raises(StorageError):  # the function errors: API Gateway answers 500
            producer_handler.handle(event, None)
        calls.append(json_log_lines(capsys))
    assert envelopes(aws.sqs, aws.resources.queue_url) == []
    denying_ssm.faults = []  # the stack's SecretsKmsKeyArn deployed, and its grant arrived
    resent = producer_handler.handle(event, None)

    for lines in calls:
        [(fix, reason)] = [
            (line["fix"], line["reason"]) for line in lines if line.get("event") == "config.invalid"
        ]
        assert parameter in fix and "WEBHOOK_SECRET_PARAMETER" in fix
        assert "SecretsKmsKeyArn" in reason and "AccessDeniedException" in reason
        assert sum(line.get("ConfigurationErrors", 0) for line in lines if "_aws" in line) == 1
        assert WEBHOOK_SECRET not in json.dumps(lines)
    assert resent["statusCode"] == 200, resent
    assert len(envelopes(aws.sqs, aws.resources.queue_url)) == 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_rotated_secret_the_role_may_not_decrypt_is_reported_when_telegram_sends_it(
    aws: Any, parameter: str, denying_ssm: FaultProxy, capsys: Any
) -> None:
    """A warm producer: the operator put the new secret under a key the role may not decrypt and
    gave it to Telegram. Reading it again is refused: the operator hears which parameter and
    setting to fix (the call itself is refused, as any call whose secret does not match)."""
    clock = FakeClock()
    producer = producer_handler.build_producer(secret_clock=clock)
    clock.now += SECRET_REREAD_INTERVAL_S  # warm: the secret was read an interval ago
    rotated = "n3w_" + "R" * 28
    aws.client("ssm").put_parameter(Name=parameter, Value=rotated, Type="SecureString", Overwrite=True)
    denying_ssm.faults = [AwsFault("ssm:GetParameter", status=400, code="AccessDeniedException")]
    capsys.readouterr()

    answer = producer.handle_event(webhook_event(update(7102, text="hi"), secret=rotated))
    lines = json_log_lines(capsys)

    assert answer["statusCode"] == 403
    [(fix, reason)] = [
        (line["fix"], line["reason"]) for line in lines if line.get("event") == "config.invalid"
    ]
    assert fix == f"{parameter} (WEBHOOK_SECRET_PARAMETER)"
    assert "SecretsKmsKeyArn" in reason
    assert sum(line.get("ConfigurationErrors", 0) for line in lines if "_aws" in line) == 1
    assert rotated not in json.dumps(lines) and WEBHOOK_SECRET not in json.dumps(lines)
