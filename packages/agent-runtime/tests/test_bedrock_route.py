"""Where the runtime's model proxy sends Bedrock calls: ANTHROPIC_BEDROCK_BASE_URL (a gateway),
else the endpoint boto3 takes for bedrock-runtime (AWS_ENDPOINT_URL_BEDROCK_RUNTIME), else
bedrock-runtime of the region. `agentbot doctor` and `agentbot dev` ask the same place."""

from __future__ import annotations

import pytest
from local_stack import ModelServer, echo_responder
from session_core import ConfigError

pytestmark = pytest.mark.slow

BEDROCK = {
    "CLAUDE_CODE_USE_BEDROCK": "1",
    "ANTHROPIC_API_KEY_PARAMETER": "",
    "BEDROCK_MODEL_ID": "anthropic.claude-sonnet-4-5-v1:0",
}


def test_without_a_gateway_turns_go_to_the_bedrock_runtime_endpoint_boto3_is_given(
    make_runtime, model_server, turn_request
) -> None:
    """doctor asked the endpoint AWS_ENDPOINT_URL_BEDROCK_RUNTIME names and passed, while the
    proxy called bedrock-runtime.<region>.amazonaws.com: every turn failed after a green check."""
    runtime = make_runtime(env=BEDROCK | {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": model_server.base_url})

    result = runtime.run_turn(turn_request("hello", turn_id=1))

    assert result.ok, result
    paths = [call.path for call in model_server.model_calls]
    assert paths and all(path.startswith("/model/") for path in paths), paths


def test_a_gateway_takes_the_turns_the_bedrock_runtime_endpoint_would(
    make_runtime, model_server, turn_request
) -> None:
    with ModelServer(echo_responder) as bedrock_runtime:
        runtime = make_runtime(
            env=BEDROCK
            | {
                "ANTHROPIC_BEDROCK_BASE_URL": model_server.base_url,
                "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock_runtime.base_url,
            }
        )
        result = runtime.run_turn(turn_request("hello", turn_id=1))
        asked_bedrock_runtime = len(bedrock_runtime.model_calls)

    assert result.ok, result
    assert model_server.model_calls and asked_bedrock_runtime == 0


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9", "https://user:secret@bedrock.example.com"])
def test_a_bedrock_runtime_endpoint_the_proxy_cannot_call_is_refused_at_start_naming_it(
    make_runtime, turn_request, endpoint
) -> None:
    """Followed by the model proxy, an AWS_ENDPOINT_URL_BEDROCK_RUNTIME without its scheme
    failed every turn as "internal" (a user:password@ in it was dropped without a word); it is
    refused as the container starts, naming the setting, as ANTHROPIC_BEDROCK_BASE_URL is, and
    never shown."""
    with pytest.raises(ConfigError) as refused:
        make_runtime(env=BEDROCK | {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": endpoint})

    assert refused.value.setting == "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", refused.value
    assert "secret" not in str(refused.value)
