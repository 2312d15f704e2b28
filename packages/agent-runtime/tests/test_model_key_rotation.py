"""The model key a warm container sends follows the SSM parameter after the API refuses it (the
bound on re-reads: session-core's test_rotating_secret)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from agent_runtime._model_proxy import AnthropicKey, ModelProxy
from agentbot_testing import FakeClock
from local_stack import ModelServer
from session_core import SECRET_REREAD_INTERVAL_S, RotatingSecret


def put(ssm: Any, name: str, value: str) -> None:
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


BODY = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def test_the_proxy_sends_a_refused_call_once_more_with_a_renewed_key_and_no_more(aws: Any) -> None:
    """Rotated to a key the API refuses as well: the CLI gets that refusal (the runtime tells the
    operator), after one call with each key."""
    ssm = aws.client("ssm")
    name = f"/agentbot-test/{uuid.uuid4().hex}/anthropic-key"
    put(ssm, name, "sk-ant-revoked")
    clock = FakeClock()
    key = RotatingSecret(ssm, name, clock=clock)
    with ModelServer(lambda request: "answer") as upstream:
        upstream.accepted_key = "sk-ant-revoked"
        proxy = ModelProxy(upstream=upstream.base_url, auth=AnthropicKey(key)).start()
        try:
            turn_key = proxy.open_turn()
            answered = httpx.post(f"{proxy.base_url}/v1/messages", json=BODY, headers={"x-api-key": turn_key})
            clock.now += SECRET_REREAD_INTERVAL_S  # warm: the key was read an interval ago
            put(ssm, name, "sk-ant-also-bad")
            upstream.accepted_key = "sk-ant-good"
            refused = httpx.post(f"{proxy.base_url}/v1/messages", json=BODY, headers={"x-api-key": turn_key})
            proxy.close_turn()
        finally:
            proxy.stop()

    assert answered.status_code == 200
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    sent = [{k.lower(): v for k, v in call.headers.items()}["x-api-key"] for call in upstream.model_calls]
    assert sent == ["sk-ant-revoked", "sk-ant-revoked", "sk-ant-also-bad"]


def test_a_rotated_key_the_role_may_not_decrypt_names_its_parameter_and_the_kms_setting(
    aws: Any, runtime_env: dict[str, str], monkeypatch: Any, capsys: Any
) -> None:
    """A warm container: the operator put the new key under a customer managed KMS key the
    runtime's role may not decrypt (SecretsKmsKeyArn empty). The re-read SSM refuses is told
    to the operator as what to fix (the parameter, the setting), not only as 'the model refuses
    the key', whose remedy (put a new key in the parameter) they have just followed."""
    import boto3
    from agent_runtime._environment import AnthropicAccess
    from agent_runtime._settings import load_settings
    from agentbot_testing import AwsFault, FaultProxy
    from session_core import configure_logging

    from .conftest import API_KEY_PARAMETER, FAKE_API_KEY

    rotated = "sk-ant-rotated-under-a-customer-key"
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "agentbot-runtime")  # JSON log lines
    with FaultProxy(aws.endpoint, services=aws.endpoints.services) as ssm_proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", ssm_proxy.endpoint)
        with ModelServer(lambda request: "answer") as upstream:
            upstream.accepted_key = FAKE_API_KEY
            access = AnthropicAccess(
                load_settings({**runtime_env, "ANTHROPIC_BASE_URL": upstream.base_url}),
                ssm=boto3.client("ssm"),
            )
            try:
                env = access.cli_environment()
                headers = {"x-api-key": env["ANTHROPIC_API_KEY"]}
                answered = httpx.post(f"{env['ANTHROPIC_BASE_URL']}/v1/messages", json=BODY, headers=headers)
                put(aws.client("ssm"), API_KEY_PARAMETER, rotated)
                upstream.accepted_key = rotated
                ssm_proxy.faults = [AwsFault("ssm:GetParameter", status=400, code="AccessDeniedException")]
                configure_logging(json_lines=True)
                capsys.readouterr()
                refused = httpx.post(f"{env['ANTHROPIC_BASE_URL']}/v1/messages", json=BODY, headers=headers)
                out, err = capsys.readouterr()
                access.end_turn()
            finally:
                access.close()

    assert answered.status_code == 200 and refused.status_code == 401
    lines = [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
    [(fix, reason)] = [
        (line["fix"], line["reason"]) for line in lines if line.get("event") == "config.invalid"
    ]
    assert fix == f"{API_KEY_PARAMETER} (ANTHROPIC_API_KEY_PARAMETER)"
    assert "SecretsKmsKeyArn" in reason
    assert sum(line.get("ConfigurationErrors", 0) for line in lines if "_aws" in line) == 1
    assert rotated not in out + err and FAKE_API_KEY not in out + err
