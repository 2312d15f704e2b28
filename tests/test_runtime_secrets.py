"""The runtime role's credentials never reach the agent's tools, not even through /proc:
the real awslambdaric process (via the local Lambda service) re-executes itself without
them in its environment block and still reads and writes storage with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from local_stack import FunctionSpec, LocalLambda, ModelServer, ToolCall, tool_results
from session_core import TURN_VERSION, SessionKey, SessionRegistry, TurnRequest, decode_turn_result, encode

from tests.test_runtime_handler import invoke

pytestmark = pytest.mark.slow
# Split so that no command line (the tool's own included) ever holds the whole value.
SECRET_HEAD, SECRET_TAIL = "runtime-role-secret-", "DO-NOT-LEAK-4711"
TOKEN_HEAD, TOKEN_TAIL = "runtime-role-session-token-", "DO-NOT-LEAK-0815"
SCAN = (
    f"printf '%s%s\\n%s%s\\n' {SECRET_HEAD} {SECRET_TAIL} {TOKEN_HEAD} {TOKEN_TAIL} > pattern.txt; "
    "echo leaked:; grep -l -a -F -f pattern.txt /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null; "
    "echo holders:; grep -l -a agentbot-visible-marker /proc/[0-9]*/environ 2>/dev/null; "
    "echo names:; for f in $(grep -l -a agentbot-visible-marker /proc/[0-9]*/environ 2>/dev/null); do "
    "grep -l -a -e AWS_SECRET_ACCESS_KEY= -e AWS_SESSION_TOKEN= -e AWS_ACCESS_KEY_ID= $f; done; "
    "echo fds:; ls /proc/self/fd; echo end-of-scan"
)


def scan_responder(request: dict[str, Any]) -> Any:
    results = tool_results(request)
    if results:
        return f"SCAN-RESULT\n{results[-1]}"
    return [ToolCall(name="Bash", input={"command": SCAN, "description": "scan /proc"})]


def test_tools_cannot_read_the_runtime_role_credentials_from_proc(
    aws, tmp_path: Path, tools_config: Path
) -> None:
    aws.client("ssm").put_parameter(
        Name="/agentbot/secrets-test-key", Value="sk-ant-test-secrets", Type="SecureString", Overwrite=True
    )
    with ModelServer(scan_responder) as model:
        env = {
            "ANTHROPIC_API_KEY_PARAMETER": "/agentbot/secrets-test-key",
            "ANTHROPIC_BASE_URL": model.base_url,
            "SESSIONS_ROOT": str(tmp_path / "sessions"),
            "CLAUDE_CONFIG_PATH": str(tools_config),
            "DEEPWIKI_MCP_URL": "http://127.0.0.1:9/mcp",
            "MODEL_MAX_RETRIES": "0",
            # As Lambda sets them for the function's role (moto accepts any credentials).
            "AWS_ACCESS_KEY_ID": "ASIAFAKERUNTIMEROLE01",
            "AWS_SECRET_ACCESS_KEY": SECRET_HEAD + SECRET_TAIL,
            "AWS_SESSION_TOKEN": TOKEN_HEAD + TOKEN_TAIL,
            "AGENTBOT_VISIBLE": "agentbot-visible-marker",  # not a secret: stays, proves the scan sees us
        }
        spec = {"agent-runtime": FunctionSpec(handler="agent_runtime.handler.handle", env=env, timeout_s=120)}
        request = TurnRequest(version=TURN_VERSION, session_key="default/777/0", turn_id=1, prompt="scan")
        with LocalLambda(spec) as lam:
            result = decode_turn_result(invoke(lam.endpoint, encode(request)))
            (runtime_pid,) = lam.process_ids

    assert result.ok, result
    scan = result.text
    assert "end-of-scan" in scan
    leaked = scan.split("leaked:", 1)[1].split("holders:", 1)[0].split()
    holders = scan.split("holders:", 1)[1].split("names:", 1)[0].split()
    names = scan.split("names:", 1)[1].split("fds:", 1)[0].split()
    tool_fds = scan.split("fds:", 1)[1].split("end-of-scan", 1)[0].split()
    assert leaked == [], scan
    assert names == [], scan
    assert f"/proc/{runtime_pid}/environ" in holders  # the tool could read the runtime's block
    assert set(tool_fds) <= {"0", "1", "2", "3"}  # no inherited pipe (3 is ls's own directory)
    # The runtime still has the credentials: it reached storage with them: the turn is recorded.
    record = SessionRegistry(dynamodb=aws.dynamodb, table=aws.resources.table).get_session(
        SessionKey.parse("default/777/0")
    )
    assert record is not None and record.turns == 1 and record.sdk_session_id == result.session_id
