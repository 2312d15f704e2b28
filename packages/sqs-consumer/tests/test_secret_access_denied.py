"""A bot token SSM will not give the consumer's role (under a customer managed KMS key while
SecretsKmsKeyArn is unset, say) is told to the operator as a configuration error naming the
parameter and the setting, on every try; the batch is still retried, and the same container
serves once the role may read it (new permissions take seconds to arrive). The handler's own
entry point, SSM (moto) behind agentbot's fault-injecting proxy."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from agentbot_testing import AwsFault, FaultProxy, json_log_lines, new_container_ssm
from session_core import StorageError
from sqs_consumer import handler as consumer_handler

TOKEN = "123456:" + "tokenvalue-" + "x" * 24


@pytest.fixture
def denying_ssm(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A new container's settings, its bot token read through a proxy (no fault yet); its JSON
    log lines are what Lambda would keep."""
    parameter = f"/agentbot/test-{uuid.uuid4().hex[:8]}/bot-token"
    aws.client("ssm").put_parameter(Name=parameter, Value=TOKEN, Type="SecureString")
    monkeypatch.setenv("BOT_TOKEN_PARAMETER", parameter)
    monkeypatch.setenv("RUNTIME_FUNCTION_NAME", "agentbot-runtime")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "agentbot-consumer")  # JSON log lines
    monkeypatch.setattr(consumer_handler, "_consumer", None)
    monkeypatch.setattr(consumer_handler, "_config_reported", False)
    with new_container_ssm(aws, monkeypatch) as proxy:
        yield proxy


def test_a_bot_token_the_role_may_not_decrypt_is_reported_on_every_try_and_the_fixed_role_serves(
    denying_ssm: FaultProxy, capsys: Any
) -> None:
    parameter = os.environ["BOT_TOKEN_PARAMETER"]
    denying_ssm.faults = [
        AwsFault("ssm:GetParameter", status=400, code="AccessDeniedException", message="kms:Decrypt")
    ]

    tries = []
    for _ in range(2):
        with pytest.raises(StorageError):  # the batch fails: its records are received again
            consumer_handler.handle({"Records": []}, None)
        tries.append(json_log_lines(capsys))
    denying_ssm.faults = []  # the stack's SecretsKmsKeyArn deployed, and its grant arrived
    served = consumer_handler.handle({"Records": []}, None)

    for lines in tries:
        [(fix, reason)] = [
            (line["fix"], line["reason"]) for line in lines if line.get("event") == "config.invalid"
        ]
        assert fix == f"{parameter} (BOT_TOKEN_PARAMETER)"
        assert "SecretsKmsKeyArn" in reason and "AccessDeniedException" in reason
        assert sum(line.get("ConfigurationErrors", 0) for line in lines if "_aws" in line) == 1
        assert TOKEN not in json.dumps(lines)
    assert served == {"batchItemFailures": []}
