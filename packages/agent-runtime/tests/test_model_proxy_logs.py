"""The model proxy's lines about a call (a wrong key, a cost cap reached) name the turn and
session the call came in during: the proxy serves calls in threads of its own, which start
with no log fields, and "model_proxy.wrong_key" alone tells an operator nothing of where."""

from __future__ import annotations

import json

import httpx
import pytest
from agent_runtime._model_proxy import ModelProxy
from local_stack import ModelServer
from session_core import bind_correlation, configure_logging

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def test_a_call_with_a_wrong_key_is_logged_with_the_turn_running_then(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json_lines=True)
    with ModelServer(lambda request: "answer") as upstream:
        proxy = ModelProxy(upstream=upstream.base_url, api_key="sk-real").start()
        try:
            bind_correlation(turn_id=77, session_key="default/77/0", request_id="invocation-77")
            proxy.open_turn()
            refused = httpx.post(f"{proxy.base_url}/v1/messages", json=BODY, headers={"x-api-key": "guessed"})
            proxy.close_turn()
        finally:
            proxy.stop()
    assert refused.status_code == 401
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [line] = [line for line in lines if line["event"] == "model_proxy.wrong_key"]
    assert (line.get("turn_id"), line.get("session_key"), line.get("request_id")) == (
        77,
        "default/77/0",
        "invocation-77",
    )
    assert "guessed" not in json.dumps(line)
