"""`agentbot dev` hands the developer's own AWS credentials for Bedrock to its runtime through
its local SSM, as it does the model key: the runtime's own credentials there are the local
stack's, which Bedrock does not know, and nothing in the runtime's environment block may hold
a secret (any process of its user can read /proc/<pid>/environ)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from agent_runtime import BEDROCK_CREDENTIALS_PARAMETER, ModelBackendError
from local_stack import LOCAL_CREDENTIALS

pytestmark = pytest.mark.slow

BEDROCK = {
    "CLAUDE_CODE_USE_BEDROCK": "1",
    "ANTHROPIC_API_KEY_PARAMETER": "",
    "BEDROCK_MODEL_ID": "anthropic.claude-sonnet-4-5-v1:0",
}


def _hand_over(aws: Any, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    # A name of its own: the runtime caches what it read per parameter name, per process.
    name = f"/agentbot-dev-{uuid.uuid4().hex[:8]}/bedrock-credentials"
    aws.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    monkeypatch.setenv(BEDROCK_CREDENTIALS_PARAMETER, name)


def _signer(call: Any) -> str:
    return str(call.headers.get("Authorization", "").split("Credential=")[1].split("/")[0])


def test_bedrock_is_signed_with_the_credentials_in_the_parameter_dev_names(
    make_runtime, model_server, turn_request, aws, monkeypatch
) -> None:
    mine = {"AccessKeyId": "AKIDDEVELOPER", "SecretAccessKey": "developer-secret", "SessionToken": "tok"}
    _hand_over(aws, monkeypatch, json.dumps(mine))
    runtime = make_runtime(env=BEDROCK | {"ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url})

    result = runtime.run_turn(turn_request("hello", turn_id=1))

    assert result.ok, result
    assert {_signer(call) for call in model_server.model_calls} == {"AKIDDEVELOPER"}


def test_without_the_parameter_bedrock_is_signed_with_the_runtimes_own(
    make_runtime, model_server, turn_request, aws
) -> None:
    runtime = make_runtime(env=BEDROCK | {"ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url})

    result = runtime.run_turn(turn_request("hello", turn_id=1))

    assert result.ok, result
    assert {_signer(call) for call in model_server.model_calls} == {LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"]}


@pytest.mark.parametrize("value", ["not json", '{"AccessKeyId": "AKIDONLY"}', '["a list"]'])
def test_a_malformed_parameter_stops_the_start_naming_the_setting_never_the_value(
    make_runtime, model_server, aws, monkeypatch, value
) -> None:
    _hand_over(aws, monkeypatch, value)

    with pytest.raises(ModelBackendError) as raised:
        make_runtime(env=BEDROCK | {"ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url})

    assert raised.value.setting == BEDROCK_CREDENTIALS_PARAMETER
    assert value not in str(raised.value) and raised.value.__cause__ is None
