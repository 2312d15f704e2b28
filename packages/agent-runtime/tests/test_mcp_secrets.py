"""An HTTP MCP server's secret header comes from SSM and reaches the server, never the agent:
not the CLI's command line or environment, not a tool's, not a file of the session. Real CLI,
scripted model, a recording MCP server on 127.0.0.1, SSM in moto."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_runtime import ClaudeConfigError, load_claude_config, workspace_paths
from agentbot_testing import LOOKUP_ANSWER, HttpMcpServer
from local_stack import ToolCall, tool_results
from session_core import SessionKey

pytestmark = pytest.mark.slow
REPO_CONFIG = Path(__file__).resolve().parents[3] / "claude-config"
KEY = "default/3003/0"
# Everything a tool of the turn can see: every process's command line and environment, its
# own environment, and every file of the session's home, config and temp directories.
DUMP = (
    "(for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/cmdline; tr '\\0' '\\n' < $p/environ; done; env; "
    "find $HOME $CLAUDE_CONFIG_DIR $TMPDIR . -type f ! -name dump.txt -exec cat {} +) "
    "> dump.txt 2>/dev/null; echo $(wc -c < dump.txt) bytes"
)


def config_with_vault(tmp_path: Path, url: str, parameter: str, client: str = "agentbot") -> Path:
    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config, ignore=shutil.ignore_patterns("approvals.json"))
    mcp = json.loads((config / "mcp.json").read_text())
    mcp["mcpServers"]["vault"] = {
        "type": "http",
        "url": url,
        "headers": {"X-Client": client},
        "headers_from_ssm": {"Authorization": parameter},
    }
    (config / "mcp.json").write_text(json.dumps(mcp))
    agents = json.loads((config / "agents.json").read_text())
    agents["main"]["allowed_tools"].append("mcp__vault__lookup")
    (config / "agents.json").write_text(json.dumps(agents))
    return config


def cli_mcp_config(dump: str, client: str) -> dict[str, Any]:
    """The MCP servers this turn's CLI was started with (its --mcp-config argument, one line of the
    dump); other tests' CLIs may run at the same time, with a vault of their own: this one's
    sends ``client`` as its X-Client header."""
    for line in dump.splitlines():
        if line.startswith('{"mcpServers"'):
            servers = dict(json.loads(line)["mcpServers"])
            if servers.get("vault", {}).get("headers", {}).get("X-Client") == client:
                return servers
    raise AssertionError("the CLI's --mcp-config was not in the dump")


def vault_then_dump(request: dict[str, Any]) -> Any:
    """Call the vault's tool, then run the dump, then answer with both results."""
    results = tool_results(request)
    if not results:
        return [ToolCall(name="mcp__vault__lookup", input={})]
    if "bytes" not in json.dumps(request["messages"][-1]) and LOOKUP_ANSWER in results[-1]:
        return [ToolCall(name="Bash", input={"command": DUMP, "description": "look for secrets"})]
    earlier = json.dumps(request["messages"])
    looked_up = LOOKUP_ANSWER if LOOKUP_ANSWER in earlier else "no lookup"
    return f"DONE: {looked_up} | dumped {results[-1].strip()}"


def test_secret_header_reaches_the_server_but_no_tool(
    aws: Any, make_runtime, model_server, turn_request, tmp_path: Path, sessions_root: Path, monkeypatch
) -> None:
    secret = f"Bearer vault-secret-{uuid.uuid4().hex}"
    parameter = f"/agentbot/test/vault-{uuid.uuid4().hex[:8]}"
    aws.client("ssm").put_parameter(Name=parameter, Value=secret, Type="SecureString")
    client = f"agentbot-{uuid.uuid4().hex[:8]}"
    with HttpMcpServer() as vault:
        config = config_with_vault(tmp_path, vault.url, parameter, client)
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
        model_server.responder = vault_then_dump
        runtime = make_runtime()

        result = runtime.run_turn(turn_request("use the vault", turn_id=1, session_key=KEY))

        dump = Path(workspace_paths(sessions_root, SessionKey.parse(KEY)).cwd, "dump.txt").read_text(
            errors="replace"
        )
        # What the CLI was given instead: the proxy and this turn's key, dead after the turn.
        given = cli_mcp_config(dump, client)["vault"]
        turn_key = given["headers"]["x-api-key"]
        after = httpx.post(given["url"], headers={"x-api-key": turn_key}, json={})

    assert result.ok, result
    assert LOOKUP_ANSWER in result.text  # the MCP call went through the proxy
    assert vault.header_values("Authorization") and set(vault.header_values("Authorization")) == {secret}
    assert set(vault.header_values("X-Client")) == {client}
    assert given["url"] != vault.url
    assert turn_key not in vault.header_values("x-api-key")  # the turn key stays local
    assert len(dump) > 10_000  # the tool really read the processes and files
    assert secret not in dump and secret.split()[1] not in dump
    assert after.status_code == 401


def look_up(request: dict[str, Any]) -> Any:
    """Call the vault's tool, then answer with what it said."""
    results = tool_results(request)
    if not results:
        return [ToolCall(name="mcp__vault__lookup", input={})]
    return f"DONE: {results[-1]}"


def test_a_warm_runtime_sends_the_secret_header_the_operator_rotated(
    aws: Any, make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch
) -> None:
    """The vault refuses the old value once the operator rotated it: the proxy reads the
    parameter again (one SSM request) and the turn's call goes through with the new value."""
    from agentbot_testing import FaultProxy

    old, new = (f"Bearer vault-{which}-{uuid.uuid4().hex}" for which in ("old", "new"))
    parameter = f"/agentbot/test/vault-{uuid.uuid4().hex[:8]}"
    ssm = aws.client("ssm")
    ssm.put_parameter(Name=parameter, Value=old, Type="SecureString")
    with HttpMcpServer() as vault, FaultProxy(aws.endpoint, services=aws.endpoints.services) as counted:
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config_with_vault(tmp_path, vault.url, parameter)))
        model_server.responder = look_up
        runtime = make_runtime(ssm=counted.client("ssm"))
        vault.required_headers = {"Authorization": old}
        before = runtime.run_turn(turn_request("use the vault", turn_id=1, session_key=KEY))
        reads = counted.seen.count("ssm:GetParameter")

        ssm.put_parameter(Name=parameter, Value=new, Type="SecureString", Overwrite=True)
        vault.required_headers = {"Authorization": new}  # the old value is revoked
        after = runtime.run_turn(turn_request("use the vault again", turn_id=2, session_key=KEY))

    assert before.ok and after.ok, (before, after)
    assert LOOKUP_ANSWER in before.text and LOOKUP_ANSWER in after.text
    assert counted.seen.count("ssm:GetParameter") == reads + 1
    sent = vault.header_values("Authorization")
    first_new = sent.index(new)  # the old value until the vault refused it, then the new one only
    assert set(sent[:first_new]) == {old} and set(sent[first_new:]) == {new}


def test_a_rotated_secret_header_the_role_may_not_decrypt_names_mcp_json_field_and_parameter(
    aws: Any, make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A warm runtime: the operator put the new value under a customer managed KMS key the
    role may not decrypt. The vault refuses the old value and SSM the new one: the operator
    reads mcp.json's field, the parameter and the settings to check, not only a failed call."""
    from agentbot_testing import AwsFault, FaultProxy
    from session_core import configure_logging

    old, new = (f"Bearer vault-{which}-{uuid.uuid4().hex}" for which in ("old", "new"))
    parameter = f"/agentbot/test/vault-{uuid.uuid4().hex[:8]}"
    ssm = aws.client("ssm")
    ssm.put_parameter(Name=parameter, Value=old, Type="SecureString")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "agentbot-runtime")  # JSON log lines
    with HttpMcpServer() as vault, FaultProxy(aws.endpoint, services=aws.endpoints.services) as denying:
        config = config_with_vault(tmp_path, vault.url, parameter)
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
        model_server.responder = look_up
        runtime = make_runtime(ssm=denying.client("ssm"))
        vault.required_headers = {"Authorization": old}
        before = runtime.run_turn(turn_request("use the vault", turn_id=1, session_key=KEY))

        ssm.put_parameter(Name=parameter, Value=new, Type="SecureString", Overwrite=True)
        vault.required_headers = {"Authorization": new}  # the old value is revoked
        denying.faults = [AwsFault("ssm:GetParameter", status=400, code="AccessDeniedException")]
        configure_logging(json_lines=True)
        capsys.readouterr()
        runtime.run_turn(turn_request("use the vault again", turn_id=2, session_key=KEY))
        out, err = capsys.readouterr()

    assert before.ok, before
    lines = [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
    [(fix, reason)] = [
        (line["fix"], line["reason"]) for line in lines if line.get("event") == "config.invalid"
    ]
    assert fix == f"{config}/mcp.json: mcpServers.vault.headers_from_ssm.Authorization"
    assert parameter in reason and "SecretsKmsKeyArn" in reason and "McpSecretsParameterPath" in reason
    assert sum(line.get("ConfigurationErrors", 0) for line in lines if "_aws" in line) == 1
    # The server's refusal of the old value is that denial, not a value to put in the parameter.
    [unavailable] = [
        line
        for line in lines
        if line.get("event") == "turn.mcp_server_unavailable" and line["server"] == "vault"
    ]
    assert "config.invalid" in unavailable["fix"] and "put a valid one" not in unavailable["fix"], unavailable
    assert old not in out + err and new not in out + err


def test_a_server_with_a_secret_header_that_dies_during_a_call_is_named_but_not_its_header(
    aws: Any, make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Through the proxy that adds its header too, the operator reads which server dropped a
    call; the header's value reaches no log."""
    from session_core import configure_logging

    secret = f"Bearer vault-secret-{uuid.uuid4().hex}"
    parameter = f"/agentbot/test/vault-{uuid.uuid4().hex[:8]}"
    aws.client("ssm").put_parameter(Name=parameter, Value=secret, Type="SecureString")
    with HttpMcpServer() as vault:
        config = config_with_vault(tmp_path, vault.url, parameter)
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
        model_server.responder = look_up
        runtime = make_runtime()
        configure_logging(json_lines=True)
        vault.dies_on_call = True

        result = runtime.run_turn(turn_request("use the vault", turn_id=1, session_key=KEY))

    logged = capsys.readouterr().err
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    named = [
        (line["server"], line["tool"], line["fix"])
        for line in lines
        if line.get("event") == "turn.mcp_server_unavailable" and "tool" in line
    ]
    assert result.ok and LOOKUP_ANSWER not in result.text, result
    assert named == [("vault", "mcp__vault__lookup", f"{config}/mcp.json: mcpServers.vault")], result.text
    assert secret.split()[1] not in logged


def test_a_server_refusing_its_secret_header_is_told_as_needing_a_new_value_in_the_parameter(
    aws: Any, make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The server's token went bad (revoked, expired) and it answers 401 without asking for a
    sign-in: the operator read "failed" and went looking for a crash. They read that the server
    needs authorisation, and which SSM parameter to refresh (never its value)."""
    from session_core import configure_logging

    stale = f"Bearer vault-stale-{uuid.uuid4().hex}"
    parameter = f"/agentbot/test/vault-{uuid.uuid4().hex[:8]}"
    aws.client("ssm").put_parameter(Name=parameter, Value=stale, Type="SecureString")
    with HttpMcpServer() as vault:
        vault.required_headers = {"Authorization": "Bearer only-the-new-one"}
        config = config_with_vault(tmp_path, vault.url, parameter)
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
        model_server.responder = look_up
        runtime = make_runtime()
        configure_logging(json_lines=True)
        capsys.readouterr()

        result = runtime.run_turn(turn_request("use the vault", turn_id=1, session_key=KEY))

    logged = capsys.readouterr().err
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    told = [line for line in lines if line.get("event") == "turn.mcp_server_unavailable"]
    assert result.ok, result
    told = [line for line in told if line["server"] == "vault"]
    assert [line["status"] for line in told] == ["needs authorisation"], told
    assert parameter in told[0]["fix"] and f"{config}/mcp.json: mcpServers.vault" in told[0]["fix"]
    assert stale not in logged and stale.split()[1] not in logged


def test_a_server_that_took_the_rotated_header_then_failed_is_not_told_as_refusing_it(
    aws: Any, make_runtime, model_server, turn_request, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The operator rotated the header; the vault refused the old value, took the new one the
    proxy read again, then failed the start for another reason (a 500). Its refusal was
    answered: the operator is not told to put a valid value in the parameter (they just did),
    nor the agent that only the operator can help (the server is left out as one that failed)."""
    from session_core import configure_logging

    old, new = (f"Bearer vault-{which}-{uuid.uuid4().hex}" for which in ("old", "new"))
    parameter = f"/agentbot/test/vault-{uuid.uuid4().hex[:8]}"
    ssm = aws.client("ssm")
    ssm.put_parameter(Name=parameter, Value=old, Type="SecureString")
    with HttpMcpServer() as vault:
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config_with_vault(tmp_path, vault.url, parameter)))
        model_server.responder = look_up
        runtime = make_runtime()
        vault.required_headers = {"Authorization": old}
        before = runtime.run_turn(turn_request("use the vault", turn_id=1, session_key=KEY))

        ssm.put_parameter(Name=parameter, Value=new, Type="SecureString", Overwrite=True)
        vault.required_headers = {"Authorization": new}  # the old value is revoked
        vault.broken = True  # it takes the new value, then fails the call
        configure_logging(json_lines=True)
        capsys.readouterr()
        runtime.run_turn(turn_request("use the vault again", turn_id=2, session_key=KEY))
        logged = capsys.readouterr().err

    assert before.ok, before
    assert new in vault.header_values("Authorization")  # the new value reached the server
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    told = [line for line in lines if line.get("event") == "turn.mcp_server_unavailable"]
    told = [line for line in told if line["server"] == "vault"]
    assert [line["status"] for line in told] == ["failed"], told
    assert parameter not in told[0]["fix"], told
    assert old not in logged and new not in logged


def runtime_check_refuses(config: Path, aws: Any) -> pytest.ExceptionInfo[ClaudeConfigError]:
    """The runtime's start-up check of ``config`` (with a model key in SSM), which must refuse it."""
    from agent_runtime import check_runtime_configuration

    environ = {
        **aws.resources.environment(),
        "ANTHROPIC_API_KEY_PARAMETER": "/agentbot/test/vault-model-key",
        "CLAUDE_CONFIG_PATH": str(config),
    }
    aws.client("ssm").put_parameter(
        Name="/agentbot/test/vault-model-key", Value="sk-ant-x", Type="SecureString", Overwrite=True
    )
    with pytest.raises(ClaudeConfigError) as caught:
        check_runtime_configuration(environ, ssm=aws.client("ssm"), session=None)
    return caught


def test_a_missing_secret_parameter_names_mcp_json_field_and_parameter(tmp_path: Path, aws: Any) -> None:
    config = config_with_vault(tmp_path, "https://vault.example/mcp", "/agentbot/test/no-such-vault-key")
    caught = runtime_check_refuses(config, aws)
    assert caught.value.file.endswith("mcp.json")
    assert caught.value.field == "mcpServers.vault.headers_from_ssm.Authorization"
    assert "/agentbot/test/no-such-vault-key" in caught.value.reason and "not found" in caught.value.reason


def test_every_missing_secret_parameter_is_named_at_once_with_the_one_to_create(
    tmp_path: Path, aws: Any
) -> None:
    from agent_runtime import McpSecretMissingError

    config = config_with_vault(tmp_path, "https://vault.example/mcp", "/agentbot/test/no-vault-key")
    mcp = json.loads((config / "mcp.json").read_text())
    mcp["mcpServers"]["vault"]["headers_from_ssm"]["X-Team"] = "/agentbot/test/no-team-key"
    (config / "mcp.json").write_text(json.dumps(mcp))
    caught = runtime_check_refuses(config, aws)
    missing = caught.value.problems
    assert all(isinstance(p, McpSecretMissingError) for p in missing)
    assert [p.parameter for p in missing] == ["/agentbot/test/no-vault-key", "/agentbot/test/no-team-key"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"headers_from_ssm": {"Authorization": "${TOKEN}"}}, "headers_from_ssm.Authorization"),
        ({"headers_from_ssm": {"bad header": "/a/b"}}, "headers_from_ssm.bad header"),
        ({"headers": {"Authorization": "x"}, "headers_from_ssm": {"X-Key": "/a/b"}}, "headers.Authorization"),
        ({"headers_from_ssm": []}, "headers_from_ssm"),
    ],
)
def test_malformed_secret_headers_are_refused(tmp_path: Path, entry: dict[str, Any], field: str) -> None:
    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config, ignore=shutil.ignore_patterns("approvals.json"))
    mcp = json.loads((config / "mcp.json").read_text())
    mcp["mcpServers"]["vault"] = {"type": "http", "url": "https://vault.example/mcp", **entry}
    (config / "mcp.json").write_text(json.dumps(mcp))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config, environ={})
    assert caught.value.field == f"mcpServers.vault.{field}"
