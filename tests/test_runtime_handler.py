"""The runtime handler driven by the real awslambdaric through the local Lambda service:
Lambda's Invoke API on one side, the Runtime API on the other, a new process per container."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from local_stack import DEMO_MODEL_LABEL, FunctionSpec, LocalLambda, ModelServer, demo_responder, local_client
from session_core import TURN_VERSION, TurnRequest, decode_turn_result, encode

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def invoke(endpoint: str, payload: bytes) -> Any:
    client = local_client("lambda", endpoint)
    out = client.invoke(FunctionName="agent-runtime", Payload=payload)
    assert "FunctionError" not in out, out["Payload"].read()
    return out["Payload"].read()


def test_handler_runs_turns_through_awslambdaric_and_a_new_container_resumes(aws, tmp_path: Path) -> None:
    key_parameter = f"/{aws.resources.table}/key"  # the run's tests share one SSM
    aws.client("ssm").put_parameter(Name=key_parameter, Value="sk-ant-test-handler", Type="SecureString")
    sessions_root = tmp_path / "sessions"
    with ModelServer(demo_responder) as model:
        env = {
            "ANTHROPIC_API_KEY_PARAMETER": key_parameter,
            "ANTHROPIC_BASE_URL": model.base_url,
            "SESSIONS_ROOT": str(sessions_root),
            "CLAUDE_CONFIG_PATH": str(REPO / "claude-config"),
            "DEEPWIKI_MCP_URL": "http://127.0.0.1:9/mcp",
            "MODEL_MAX_RETRIES": "0",
        }
        spec = {"agent-runtime": FunctionSpec(handler="agent_runtime.handler.handle", env=env, timeout_s=120)}

        def turn(update_id: int, prompt: str) -> Any:
            request = TurnRequest(
                version=TURN_VERSION, session_key="default/555/3", turn_id=update_id, prompt=prompt
            )
            return decode_turn_result(invoke(lam.endpoint, encode(request)))

        with LocalLambda(spec) as lam:
            first = turn(1, "hello, I am Ada")
            first_pids = lam.process_ids
            bad = json.loads(invoke(lam.endpoint, b'{"version": 1, "session_key": "default/555/3"}'))
        shutil.rmtree(sessions_root)  # a new container: new process, empty /tmp
        with LocalLambda(spec) as lam:
            second = turn(2, "who am I?")
            assert set(lam.process_ids).isdisjoint(first_pids)
            replayed = turn(2, "who am I?")

    assert first.ok and first.text.startswith(DEMO_MODEL_LABEL) and "0 earlier user turns" in first.text
    assert second.ok and "1 earlier user turn" in second.text and second.session_id == first.session_id
    assert replayed.replayed and replayed.text == second.text
    assert bad["error_kind"] == "bad_request" and bad["retryable"] is False
    assert "hello, I am Ada" in json.dumps(model.model_calls[-1].body["messages"])


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    "event",
    [
        {"version": 1, "session_key": "default/1/0", "update_id": 3, "prompt": "x", "extra": _deep(70)},
        {"version": 1, "session_key": "default/1/0", "update_id": 3, "prompt": _deep(2_000)},
        {"version": _deep(100_000)},
        [_deep(500)],
        {"version": 1, "session_key": "default/1/0", "update_id": 3, "prompt": {1, 2}},
    ],
    ids=["deep-extra-field", "deep-prompt", "deeper-than-recursion", "deep-list-event", "not-json"],
)
def test_events_too_deep_or_not_json_are_bad_requests_not_exceptions(event) -> None:
    from agent_runtime import handler

    answer = handler.handle(event, None)  # decoded before any runtime is built

    assert answer["error_kind"] == "bad_request" and answer["retryable"] is False


@pytest.mark.parametrize(
    "answer",
    ["a plain answer", "broken \ud83d emoji", "\udc00 low first", "pair in reverse \ude00\ud83d"],
)
def test_an_answer_whose_delivery_fails_is_replayed_on_retry_not_bought_again(aws, tmp_path, answer) -> None:
    """The model answers (tokens spent); the step after it fails (the Invoke response is lost
    on the way back, through a real proxy). The caller's retry gets the recorded answer and
    the model is not called again, whatever text the model produced."""
    from agentbot_testing import AwsFault, FaultProxy
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from session_core import SessionKey, SessionRegistry, well_formed

    aws.client("ssm").put_parameter(
        Name="/agentbot/key2", Value="sk-ant-test-handler", Type="SecureString", Overwrite=True
    )
    session_key = f"default/{600 + len(answer)}/{sum(map(ord, answer)) % 1000 + 1}"  # one per case
    with ModelServer(lambda request: answer) as model:
        env = {
            "ANTHROPIC_API_KEY_PARAMETER": "/agentbot/key2",
            "ANTHROPIC_BASE_URL": model.base_url,
            "SESSIONS_ROOT": str(tmp_path / "sessions"),
            "CLAUDE_CONFIG_PATH": str(REPO / "claude-config"),
            "DEEPWIKI_MCP_URL": "http://127.0.0.1:9/mcp",
            "MODEL_MAX_RETRIES": "0",
        }
        spec = {"agent-runtime": FunctionSpec(handler="agent_runtime.handler.handle", env=env, timeout_s=120)}
        request = TurnRequest(version=TURN_VERSION, session_key=session_key, turn_id=41, prompt="hi")
        lost = AwsFault("lambda:Invoke", times=1, forward_first=True)
        with LocalLambda(spec) as lam, FaultProxy(lam.endpoint, [lost]) as proxy:
            client = proxy.client("lambda", config=Config(retries={"total_max_attempts": 1}))
            with pytest.raises(ClientError):  # the turn ran; its answer never arrived
                client.invoke(FunctionName="agent-runtime", Payload=encode(request))
            retried = client.invoke(FunctionName="agent-runtime", Payload=encode(request))

    assert "FunctionError" not in retried
    result = decode_turn_result(retried["Payload"].read())
    assert result.ok and result.replayed, result
    assert result.text == well_formed(answer)
    assert len(model.model_calls) == 1  # paid once
    registry = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table)
    session = registry.get_session(SessionKey.parse(session_key))
    assert session is not None and session.turns == 1 and session.cost_usd > 0  # cost recorded
