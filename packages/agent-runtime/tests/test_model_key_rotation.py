"""The model key a warm container sends follows the SSM parameter after the API refuses it, but
reads the parameter again at most once per interval: a key that is simply bad (revoked, no new
one yet) must not turn every refused call of every turn into an SSM request."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from agent_runtime._model_proxy import AnthropicKey, ModelProxy
from agent_runtime._rotating_key import REREAD_INTERVAL_S, RotatingKey
from agentbot_testing import FakeClock
from local_stack import ModelServer
from session_core import configure_logging


def put(ssm: Any, name: str, value: str) -> None:
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


def test_a_refused_key_is_read_again_at_most_once_per_interval(aws: Any) -> None:
    ssm = aws.client("ssm")
    name = f"/agentbot-test/{uuid.uuid4().hex}/anthropic-key"
    put(ssm, name, "sk-ant-first")
    clock = FakeClock()
    key = RotatingKey(ssm, name, clock=clock)
    assert key.current() == "sk-ant-first"

    put(ssm, name, "sk-ant-second")  # the operator rotates it
    assert key.renew("sk-ant-first") is True
    assert key.current() == "sk-ant-second"

    # Another call refused with the first key while the second was read: sent again with the
    # second, and SSM is not asked (the third value is not picked up).
    put(ssm, name, "sk-ant-third")
    assert key.renew("sk-ant-first") is True
    assert key.current() == "sk-ant-second"

    # The second is refused too, too soon after the last read: kept, refused calls pass back.
    clock.now += REREAD_INTERVAL_S - 1
    assert key.renew("sk-ant-second") is False
    assert key.current() == "sk-ant-second"

    clock.now += 1
    assert key.renew("sk-ant-second") is True
    assert key.current() == "sk-ant-third"


def test_a_reread_that_finds_the_same_key_or_no_parameter_keeps_the_key_and_logs_no_value(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json_lines=True, level="DEBUG")
    ssm = aws.client("ssm")
    name = f"/agentbot-test/{uuid.uuid4().hex}/anthropic-key"
    put(ssm, name, "sk-ant-only-one")
    clock = FakeClock()
    key = RotatingKey(ssm, name, clock=clock)
    key.current()

    assert key.renew("sk-ant-only-one") is False  # nothing rotated: the refusal stands
    ssm.delete_parameter(Name=name)
    clock.now += REREAD_INTERVAL_S
    assert key.renew("sk-ant-only-one") is False
    assert key.current() == "sk-ant-only-one"

    logged = capsys.readouterr()
    assert "model_key.reread_failed" in logged.err and name in logged.err
    assert "sk-ant-only-one" not in logged.out + logged.err


BODY = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def test_the_proxy_sends_a_refused_call_once_more_with_a_renewed_key_and_no_more(aws: Any) -> None:
    """Rotated to a key the API refuses as well: the CLI gets that refusal (the runtime tells the
    operator), after one call with each key."""
    ssm = aws.client("ssm")
    name = f"/agentbot-test/{uuid.uuid4().hex}/anthropic-key"
    put(ssm, name, "sk-ant-revoked")
    key = RotatingKey(ssm, name)
    with ModelServer(lambda request: "answer") as upstream:
        upstream.accepted_key = "sk-ant-revoked"
        proxy = ModelProxy(upstream=upstream.base_url, auth=AnthropicKey(key)).start()
        try:
            turn_key = proxy.open_turn()
            answered = httpx.post(f"{proxy.base_url}/v1/messages", json=BODY, headers={"x-api-key": turn_key})
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
