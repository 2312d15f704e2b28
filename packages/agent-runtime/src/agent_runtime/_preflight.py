"""The one start-up check of what the runtime needs, shared by the Lambda runtime, `agentbot dev`
and `agentbot doctor`: settings, claude-config and model access.

A problem found here is *permanent*: retrying the turn cannot cure it, only the operator can.
Each raises an error that names the setting, or the file and field, to fix
(:data:`PERMANENT_CONFIG_ERRORS`); a transient failure on the way (SSM throttled, STS
unreachable) raises ``session_core.StorageError`` / ``ModelBackendError(retryable=True)`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from session_core import ConfigError, SecretAccessDeniedError, read_secret

from ._bedrock_route import lacks_signing_credentials
from ._claude_config import ClaudeConfig, load_claude_config
from ._errors import ClaudeConfigError, ModelBackendError
from ._mcp_commands import AS_THIS_PROCESS, ProgramLookup
from ._mcp_secrets import read_mcp_secret_headers
from ._settings import RuntimeSettings, load_settings

PERMANENT_CONFIG_ERRORS = (ConfigError, ClaudeConfigError, ModelBackendError)


def check_runtime_configuration(
    environ: Mapping[str, str],
    *,
    ssm: Any,
    session: Any,
    sts: Any = None,
    programs: ProgramLookup = AS_THIS_PROCESS,
) -> tuple[RuntimeSettings, ClaudeConfig]:
    """Settings, claude-config (with its command MCP servers' programs, and its HTTP servers'
    secret headers in SSM) and model access, as a runtime container would meet them.

    ``ssm`` reads the Anthropic key parameter, ``session`` (boto3) supplies the credentials
    Bedrock is signed with, ``sts`` assumes ``MODEL_INVOKE_ROLE_ARN``, ``programs`` finds the
    command servers' programs (as the agent's user). Raises one of
    :data:`PERMANENT_CONFIG_ERRORS` for the first thing found wrong (for claude-config, with
    every problem found in it: ``ClaudeConfigError.problems``).
    """
    settings = load_settings(environ)
    config = load_claude_config(
        environ.get("CLAUDE_CONFIG_PATH", "").strip() or None, environ=environ, programs=programs
    )
    check_model_access(settings, environ, ssm=ssm, session=session, sts=sts)
    read_mcp_secret_headers(config, ssm)
    return settings, config


def check_model_access(
    settings: RuntimeSettings, environ: Mapping[str, str], *, ssm: Any, session: Any, sts: Any = None
) -> None:
    """The model key is in SSM (Anthropic), or Bedrock has a region and credentials to sign with.

    Nothing is sent to the model here: `agentbot doctor` makes the 1-token request.
    """
    if settings.backend == "anthropic":
        assert settings.anthropic_api_key_parameter is not None  # load_settings insists
        read_secret(ssm, settings.anthropic_api_key_parameter)  # ConfigError names the parameter
        return
    if not (environ.get("AWS_REGION", "").strip() or environ.get("AWS_DEFAULT_REGION", "").strip()):
        raise ModelBackendError(
            "AWS_REGION", "is not set: Bedrock needs the region where the model is enabled (e.g. us-east-1)"
        )
    if settings.model_invoke_role_arn:
        if sts is None:
            raise ModelBackendError("MODEL_INVOKE_ROLE_ARN", "is set but no STS client was given")
        try:
            sts.assume_role(
                RoleArn=settings.model_invoke_role_arn,
                RoleSessionName="agentbot-preflight",
                DurationSeconds=900,
            )
        except Exception as exc:  # botocore ClientError / BotoCoreError
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
            # A refusal is the operator's to fix; the network may come back by itself.
            transient = code in ("Throttling", "ThrottlingException", "ServiceUnavailable") or not hasattr(
                exc, "response"
            )
            raise ModelBackendError(
                "MODEL_INVOKE_ROLE_ARN", f"cannot be assumed ({code})", retryable=transient
            ) from exc
        return
    if lacks_signing_credentials(session, gateway=settings.bedrock_base_url):
        raise ModelBackendError(
            "CLAUDE_CODE_USE_BEDROCK",
            "is set but no AWS credentials were found",  # the fix is the caller's to say
        )


def config_problem(exc: BaseException) -> tuple[str, str]:
    """(what to fix: the setting, or file and field; why) of a permanent configuration error."""
    if isinstance(exc, ClaudeConfigError):
        return (f"{exc.file}: {exc.field}" if exc.field else exc.file), exc.reason
    if isinstance(exc, ConfigError | ModelBackendError | SecretAccessDeniedError):
        return exc.setting, exc.reason
    return type(exc).__name__, str(exc)
