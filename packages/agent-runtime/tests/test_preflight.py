"""The runtime's start-up check of model access and of its command MCP servers' programs: what
is permanent names the setting, or the file and field, to fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from agent_runtime import (
    ClaudeConfigError,
    ModelBackendError,
    check_model_access,
    check_runtime_configuration,
    load_settings,
)

BASE = {"SESSIONS_TABLE": "t", "SESSIONS_BUCKET": "b", "CLAUDE_CODE_USE_BEDROCK": "1"}


class NoCredentials:
    """A boto3-Session-shaped object whose credential chain found nothing."""

    def get_credentials(self) -> Any:
        return None


@pytest.mark.parametrize(
    ("extra", "setting", "words"),
    [
        ({}, "AWS_REGION", "region where the model is enabled"),
        ({"AWS_REGION": "eu-west-1"}, "CLAUDE_CODE_USE_BEDROCK", "no AWS credentials"),
    ],
)
def test_bedrock_without_region_or_credentials_names_the_setting(
    extra: dict[str, str], setting: str, words: str
) -> None:
    environ = {**BASE, **extra}
    with pytest.raises(ModelBackendError) as caught:
        check_model_access(load_settings(environ), environ, ssm=None, session=NoCredentials())
    assert caught.value.setting == setting and words in caught.value.reason
    assert caught.value.retryable is False


def test_bedrock_through_a_gateway_that_authenticates_itself_needs_no_credentials() -> None:
    environ = {**BASE, "AWS_REGION": "eu-west-1", "ANTHROPIC_BEDROCK_BASE_URL": "http://127.0.0.1:9"}
    check_model_access(load_settings(environ), environ, ssm=None, session=NoCredentials())


def test_a_model_invoke_role_is_assumed_at_start(aws: Any) -> None:
    environ = {
        **BASE,
        "AWS_REGION": "us-east-1",
        "MODEL_INVOKE_ROLE_ARN": "arn:aws:iam::123456789012:role/agentbot-model-invoke",
    }
    check_model_access(load_settings(environ), environ, ssm=None, session=None, sts=aws.client("sts"))
    with pytest.raises(ModelBackendError) as caught:
        check_model_access(load_settings(environ), environ, ssm=None, session=None, sts=None)
    assert caught.value.setting == "MODEL_INVOKE_ROLE_ARN"


# --- command (stdio) MCP servers: their program must be there where the runtime runs ------------

REPO_CONFIG = Path(__file__).resolve().parents[3] / "claude-config"


def _config_with_server(tmp_path: Path, server: dict[str, Any]) -> dict[str, str]:
    """A copy of the shipped claude-config with one more command server, and an environment
    that passes every other start-up check (Bedrock through a gateway: no key, no AWS)."""
    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config, dirs_exist_ok=True)  # again: only mcp.json changes
    mcp = json.loads((config / "mcp.json").read_text())
    mcp["mcpServers"]["github"] = server
    (config / "mcp.json").write_text(json.dumps(mcp))
    return {
        **BASE,
        "AWS_REGION": "eu-west-1",
        "ANTHROPIC_BEDROCK_BASE_URL": "http://127.0.0.1:9",
        "CLAUDE_CONFIG_PATH": str(config),
        "PATH": str(tmp_path / "bin") + ":/usr/bin:/bin",
    }


def _start_up_problem(environ: dict[str, str]) -> ClaudeConfigError:
    with pytest.raises(ClaudeConfigError) as caught:
        check_runtime_configuration(environ, ssm=None, session=NoCredentials())
    return caught.value


def test_a_command_server_whose_program_is_not_installed_stops_the_start_naming_the_field(
    tmp_path: Path,
) -> None:
    environ = _config_with_server(tmp_path, {"command": "npx-not-installed-here", "args": ["-y", "x"]})

    problem = _start_up_problem(environ)

    assert problem.file == environ["CLAUDE_CONFIG_PATH"] + "/mcp.json"
    assert problem.field == "mcpServers.github.command"
    assert "'npx-not-installed-here' is not on the runtime's PATH" in problem.reason
    assert "packages/agent-runtime/Dockerfile" in problem.reason


def test_a_long_repetitive_path_is_shown_short_in_the_error(tmp_path: Path) -> None:
    """A developer's shell PATH can run to hundreds of characters, much of it repeated."""
    environ = _config_with_server(tmp_path, {"command": "npx-not-installed-here"})
    many = [f"/opt/tool{n}/bin" for n in range(10)]
    environ["PATH"] = ":".join(["/usr/bin", "/bin", "/usr/bin", *many, "/bin"])

    problem = _start_up_problem(environ)

    assert "(/usr/bin:/bin:/opt/tool0/bin:/opt/tool1/bin:/opt/tool2/bin:/opt/tool3/bin and 6 more)" in (
        problem.reason
    ), problem.reason


def test_a_command_server_given_as_a_relative_or_unrunnable_path_stops_the_start(tmp_path: Path) -> None:
    plain_file = tmp_path / "server.py"
    plain_file.write_text("print('not executable')\n")

    relative = _start_up_problem(_config_with_server(tmp_path, {"command": "./server.py"}))
    unrunnable = _start_up_problem(_config_with_server(tmp_path, {"command": str(plain_file)}))

    assert relative.field == unrunnable.field == "mcpServers.github.command"
    assert "relative path" in relative.reason and "absolute path" in relative.reason
    assert f"{plain_file} is not an executable file" in unrunnable.reason


def test_a_command_server_is_found_on_the_runtimes_path_or_its_own(tmp_path: Path) -> None:
    own_bin = tmp_path / "own-bin"
    for directory in (tmp_path / "bin", own_bin):
        directory.mkdir()
    for program in (tmp_path / "bin" / "on-runtime-path", own_bin / "on-own-path"):
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)

    for server in (
        {"command": "on-runtime-path"},
        {"command": "on-own-path", "env": {"PATH": str(own_bin)}},
        {"command": "${PYTHON}", "args": ["-V"]},
    ):
        environ = _config_with_server(tmp_path, server)
        _settings, config = check_runtime_configuration(environ, ssm=None, session=NoCredentials())
        assert "github" in config.mcp_servers
