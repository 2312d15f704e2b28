"""Smoke test of the built runtime image (packages/agent-runtime/Dockerfile), arm64 under
emulation here: the local Lambda service runs the image with `docker run` on the host network,
its awslambdaric long-polls our Runtime API, and one real turn runs: restore, the image's
aarch64 Claude Code CLI against the scripted model, persist to the test's AWS.

Runs when `AGENTBOT_RUNTIME_IMAGE` names an image (`.ci/run` builds one with
infra/images/runtime.sh); skipped otherwise, saying so.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from local_stack import DEMO_MODEL_LABEL, FunctionSpec, LocalLambda, ModelServer, demo_responder, local_client
from session_core import TURN_VERSION, TurnRequest, decode_turn_result, encode

IMAGE = os.environ.get("AGENTBOT_RUNTIME_IMAGE", "")
PLATFORM = os.environ.get("AGENTBOT_RUNTIME_PLATFORM", "linux/arm64")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not IMAGE, reason="AGENTBOT_RUNTIME_IMAGE not set (no runtime image built)"),
]


@pytest.mark.timeout(900)
def test_the_image_runs_a_real_turn_and_persists_it(aws: Any, tmp_path: Path) -> None:
    key_parameter = f"/{aws.resources.table}/key"  # the run's tests share one SSM
    aws.client("ssm").put_parameter(Name=key_parameter, Value="sk-ant-test-image", Type="SecureString")
    with ModelServer(demo_responder) as model:
        env = {
            **aws.resources.environment(),
            "ANTHROPIC_API_KEY_PARAMETER": key_parameter,
            "ANTHROPIC_BASE_URL": model.base_url,
            "DEEPWIKI_MCP_URL": "http://127.0.0.1:9/mcp",
            "MODEL_MAX_RETRIES": "0",
        }
        spec = FunctionSpec(
            handler="agent_runtime.handler.handle",
            env=env,
            timeout_s=840,
            max_concurrency=1,
            image=IMAGE,
            image_platform=PLATFORM,
        )
        started = time.monotonic()
        with (
            (tmp_path / "runtime.log").open("w+") as log,
            LocalLambda({"agent-runtime": spec}, log=log) as lam,
        ):
            client = local_client("lambda", lam.endpoint, config=_long_read())
            request = TurnRequest(
                version=TURN_VERSION, session_key="default/777/0", turn_id=1, prompt="hello image"
            )
            out = client.invoke(FunctionName="agent-runtime", Payload=encode(request))
            payload = out["Payload"].read()
        elapsed = time.monotonic() - started
    assert "FunctionError" not in out, payload
    result = decode_turn_result(payload)
    assert result.ok and result.text.startswith(DEMO_MODEL_LABEL), result
    assert "hello image" in str(model.model_calls[-1].body["messages"])
    # Persisted: a short transcript lives in DynamoDB items (S3 holds compacted snapshots).
    items = aws.dynamodb.scan(TableName=aws.resources.table, ConsistentRead=True)["Items"]
    session_items = [i for i in items if "default/777/0" in str(i)]
    assert len(session_items) >= 2, items
    # The image's CLI may be run, not read, by the function's user: the kernel starts it
    # non-dumpable, so even without Landlock (none under emulation) no tool reaches its pipes.
    sandbox = next(
        json.loads(line)
        for line in (tmp_path / "runtime.log").read_text().splitlines()
        if '"sandbox.landlock' in line
    )
    assert sandbox.get("abi", 0) >= 1 or "non-dumpable CLI" in sandbox["still_enforced"], sandbox
    assert "cli_pipes" not in sandbox, sandbox
    print(f"runtime image turn (cold start under {PLATFORM}) took {elapsed:.1f} s")


def _long_read() -> Any:
    from botocore.config import Config

    return Config(read_timeout=900, retries={"total_max_attempts": 1})
