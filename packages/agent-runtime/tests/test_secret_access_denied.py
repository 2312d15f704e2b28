"""A secret parameter SSM will not give the runtime's role (outside McpSecretsParameterPath, or
under a customer managed KMS key while SecretsKmsKeyArn is unset) is told to the operator as a
configuration error naming what to fix, on every try; the message is still retried and the
container still builds once the role may read it (new permissions take seconds to arrive).
The handler's own entry point, SSM (moto) behind agentbot's fault-injecting proxy."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from agent_runtime import handler
from agentbot_testing import AwsFault, FaultProxy, json_log_lines, new_container_ssm
from session_core import StorageError, encode

from .conftest import API_KEY_PARAMETER, FAKE_API_KEY

pytestmark = pytest.mark.slow
REPO_CONFIG = Path(__file__).resolve().parents[3] / "claude-config"


@pytest.fixture
def denying_ssm(
    aws: Any, runtime_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultProxy]:
    """The handler's next build reads SSM through a proxy (no fault yet), as a new container
    would; its JSON log lines are what Lambda would keep."""
    monkeypatch.setattr(handler, "_runtime", None)
    monkeypatch.setattr(handler, "_config_error", None)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "agentbot-runtime")  # JSON log lines
    with new_container_ssm(aws, monkeypatch) as proxy:
        yield proxy
        built = handler._runtime
        if built is not None:
            built.model.close()


def invoke(turn_request: Any, turn_id: int) -> Any:
    event = msgspec.json.decode(encode(turn_request("hello", turn_id=turn_id, session_key="default/8080/0")))
    return handler.handle(event, None)


def config_lines(lines: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(line["fix"], line["reason"]) for line in lines if line.get("event") == "config.invalid"]


def metric_count(lines: list[dict[str, Any]]) -> int:
    return sum(line.get("ConfigurationErrors", 0) for line in lines if "_aws" in line)


def use_config_with_vault(tmp_path: Path, parameter: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's claude-config (no approvals) with an MCP server "vault" whose
    Authorization header is read from SSM ``parameter``, as the runtime's config (answered)."""
    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config, ignore=shutil.ignore_patterns("approvals.json"))
    mcp = json.loads((config / "mcp.json").read_text())
    mcp["mcpServers"]["vault"] = {
        "type": "http",
        "url": "http://127.0.0.1:9/mcp",
        "headers_from_ssm": {"Authorization": parameter},
    }
    (config / "mcp.json").write_text(json.dumps(mcp))
    monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
    return config


def test_a_key_the_role_may_not_decrypt_is_reported_on_every_try_and_the_fixed_role_answers(
    denying_ssm: FaultProxy, turn_request: Any, capsys: Any
) -> None:
    """KMS refuses the key's decryption: each try logs config.invalid naming the parameter and
    SecretsKmsKeyArn and counts the metric, and is retried (raised, as an outage is); once the
    role may decrypt, the same container answers: it kept no permanent error."""
    denied = AwsFault("ssm:GetParameter", status=400, code="AccessDeniedException", message="kms:Decrypt")
    denying_ssm.faults = [denied]

    tries = []
    for turn_id in (1, 2):
        with pytest.raises(StorageError):
            invoke(turn_request, turn_id)
        tries.append(json_log_lines(capsys))
    denying_ssm.faults = []  # the stack's SecretsKmsKeyArn deployed, and its grant arrived
    answered = invoke(turn_request, 3)

    for lines in tries:
        ((fix, reason),) = config_lines(lines)
        assert fix == API_KEY_PARAMETER
        assert "SecretsKmsKeyArn" in reason and "AccessDeniedException" in reason
        assert metric_count(lines) == 1
        assert FAKE_API_KEY not in json.dumps(lines)
    assert answered["error_kind"] is None and answered["retryable"] is False, answered
    assert answered["text"]


def test_an_mcp_secret_outside_the_stacks_path_names_the_field_the_parameter_and_the_path(
    aws: Any,
    denying_ssm: FaultProxy,
    turn_request: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """IAM refuses a headers_from_ssm parameter outside McpSecretsParameterPath: the operator
    reads mcp.json's field, the parameter and the setting; the value reaches no log."""
    parameter = f"/elsewhere/vault-{uuid.uuid4().hex[:8]}"
    secret = f"Bearer vault-{uuid.uuid4().hex}"
    aws.client("ssm").put_parameter(Name=parameter, Value=secret, Type="SecureString")
    config = use_config_with_vault(tmp_path, parameter, monkeypatch)
    denying_ssm.faults = [
        AwsFault(
            "ssm:GetParameter",
            status=400,
            code="AccessDeniedException",
            when=lambda operation, body: parameter.encode() in body,
        )
    ]

    with pytest.raises(StorageError):
        invoke(turn_request, 1)
    lines = json_log_lines(capsys)

    ((fix, reason),) = config_lines(lines)
    assert fix == f"{config}/mcp.json: mcpServers.vault.headers_from_ssm.Authorization"
    assert parameter in reason and "McpSecretsParameterPath" in reason
    assert metric_count(lines) == 1
    assert secret not in json.dumps(lines)


def test_a_rotated_key_the_role_may_not_decrypt_is_told_once_as_the_kms_key_not_as_a_refused_key(
    aws: Any, denying_ssm: FaultProxy, model_server: Any, turn_request: Any, capsys: Any
) -> None:
    """A warm container: the operator rotated the key, under a customer managed KMS key the
    role may not decrypt, and revoked the old one. The operator read two lines: the denied
    re-read (the KMS key: what to fix), and beside it 'the key or role is refused: put a new
    key in the parameter', which they had just done. One line now, the accurate one."""
    rotated = "sk-ant-rotated-under-a-customer-key"
    model_server.accepted_key = FAKE_API_KEY
    first = invoke(turn_request, 1)
    json_log_lines(capsys)
    aws.client("ssm").put_parameter(
        Name=API_KEY_PARAMETER, Value=rotated, Type="SecureString", Overwrite=True
    )
    model_server.accepted_key = rotated  # the old key is revoked
    denying_ssm.faults = [AwsFault("ssm:GetParameter", status=400, code="AccessDeniedException")]

    refused = invoke(turn_request, 2)
    lines = json_log_lines(capsys)

    assert first["error_kind"] is None, first
    assert refused["error_kind"] == "config" and refused["retryable"] is False, refused
    ((fix, reason),) = config_lines(lines)
    assert fix == f"{API_KEY_PARAMETER} (ANTHROPIC_API_KEY_PARAMETER)"
    assert "SecretsKmsKeyArn" in reason and "AccessDeniedException" in reason
    assert [line["event"] for line in lines if API_KEY_PARAMETER in json.dumps(line)] == ["config.invalid"]
    assert metric_count(lines) == 1
    assert rotated not in json.dumps(lines) and FAKE_API_KEY not in json.dumps(lines)


UNUSABLE_KEY = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_a_key_kms_will_not_use_is_named_with_its_state_not_as_a_missing_secrets_kms_key_arn(
    denying_ssm: FaultProxy, turn_request: Any, capsys: Any
) -> None:
    """SSM answers InvalidKeyId when the parameter's KMS key is pending deletion (or disabled):
    the operator was told to set SecretsKmsKeyArn, which they had set. They read the key, its
    state and what to do with it."""
    denying_ssm.faults = [
        AwsFault(
            "ssm:GetParameter",
            status=400,
            code="InvalidKeyId",
            message=f"{UNUSABLE_KEY} is pending deletion. (Service: AWSKMS; Status Code: 400; "
            "Error Code: KMSInvalidStateException; Request ID: 0f1e2d3c)",
        )
    ]

    with pytest.raises(StorageError):
        invoke(turn_request, 1)
    lines = json_log_lines(capsys)

    ((fix, reason),) = config_lines(lines)
    assert fix == API_KEY_PARAMETER
    assert UNUSABLE_KEY in reason and "pending deletion" in reason and "cancel its deletion" in reason
    assert "give that key's ARN" not in reason
    assert metric_count(lines) == 1


def test_an_mcp_secret_under_a_disabled_key_names_the_key_not_the_stacks_path(
    aws: Any,
    denying_ssm: FaultProxy,
    turn_request: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """A headers_from_ssm parameter under the path, whose KMS key is disabled: not told to
    move it under McpSecretsParameterPath, where it is."""
    parameter = f"/agentbot/mcp/vault-{uuid.uuid4().hex[:8]}"
    aws.client("ssm").put_parameter(Name=parameter, Value="Bearer vault", Type="SecureString")
    config = use_config_with_vault(tmp_path, parameter, monkeypatch)
    denying_ssm.faults = [
        AwsFault(
            "ssm:GetParameter",
            status=400,
            code="InvalidKeyId",
            message=f"{UNUSABLE_KEY} is disabled. (Service: AWSKMS; Error Code: DisabledException)",
            when=lambda operation, body: parameter.encode() in body,
        )
    ]

    with pytest.raises(StorageError):
        invoke(turn_request, 1)
    lines = json_log_lines(capsys)

    ((fix, reason),) = config_lines(lines)
    assert fix == f"{config}/mcp.json: mcpServers.vault.headers_from_ssm.Authorization"
    assert parameter in reason and UNUSABLE_KEY in reason and "disabled" in reason
    assert "McpSecretsParameterPath" not in reason and "give that key's ARN" not in reason
