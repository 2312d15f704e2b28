"""The model key a warm container sends follows the SSM parameter after the API refuses it (the
bound on re-reads: session-core's test_rotating_secret)."""

from __future__ import annotations

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
