"""What each variable of the deployed runtime holds, for the image build's check of
claude-config (build_check) and `agentbot doctor --stack`'s: Lambda's own and those
infra/template.yaml sets.

The build has none of them, and the stack's parameters are chosen only at `sam deploy`. So
mcp.json's ``${NAME}`` of one is checked with a value of the shape it has at deploy: a URL
made of ``${TENANT}`` is refused (a tenant is never a URL), one with ``${ANTHROPIC_BASE_URL}``
or a port from a number passes. tests/test_template.py keeps every entry in step with the
template: its fixed value, or one its parameter takes, and empty exactly where it may be.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from session_core import DEFAULT_RUNTIME_MEMORY_MB


@dataclass(frozen=True, kw_only=True)
class DeployedVariable:
    """``example``: a value the variable may hold at deploy, which the build checks with;
    ``source``: what gives it that value, as the operator would change it; ``empty_when``:
    when the deployed value is empty (None: never); ``parameter``: the stack parameter the
    operator sets it with (None: Lambda's, or fixed by the template)."""

    example: str
    source: str
    empty_when: str | None = None
    parameter: str | None = None


_LAMBDA = "Lambda"


def _lambda(example: str) -> DeployedVariable:
    return DeployedVariable(example=example, source=_LAMBDA)


def _fixed(example: str) -> DeployedVariable:
    return DeployedVariable(example=example, source="infra/template.yaml (a fixed value)")


def _parameter(name: str, example: str, *, empty_when: str | None = None) -> DeployedVariable:
    return DeployedVariable(
        example=example, source=f"the stack's {name} parameter", empty_when=empty_when, parameter=name
    )


DEPLOYED_VARIABLES: dict[str, DeployedVariable] = {
    "AWS_REGION": _lambda("us-east-1"),
    "AWS_DEFAULT_REGION": _lambda("us-east-1"),
    # Not AWS_EXECUTION_ENV: AWS documents it as a managed runtime's id (AWS_Lambda_python3.13),
    # not defined for OS-only runtimes, and names no value for a container image like this one.
    "AWS_LAMBDA_FUNCTION_NAME": _lambda("agentbot-runtime"),
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": _lambda(str(DEFAULT_RUNTIME_MEMORY_MB)),
    "AWS_LAMBDA_FUNCTION_VERSION": _lambda("$LATEST"),
    "AWS_LAMBDA_LOG_GROUP_NAME": _lambda("/aws/lambda/agentbot-runtime"),
    "AWS_LAMBDA_LOG_STREAM_NAME": _lambda("2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef"),
    "TZ": _lambda(":UTC"),
    # the template's (Globals and RuntimeFunction)
    "SESSIONS_TABLE": _parameter("BotName", "agentbot-sessions"),
    "SESSIONS_BUCKET": _parameter("BotName", "agentbot-sessions-123456789012-us-east-1"),
    "TENANT": _parameter("Tenant", "default"),
    "SESSION_TTL_DAYS": _parameter("SessionTtlDays", "25"),
    "LOG_LEVEL": _parameter("LogLevel", "INFO"),
    "SESSIONS_ROOT": _fixed("/tmp/agentbot-sessions"),
    "SESSION_DISK_LIMIT_MB": _fixed("512"),
    "LEASE_DURATION_S": _fixed("120"),
    "MODEL_TIMEOUT_MS": _fixed("120000"),
    "MODEL_MAX_RETRIES": _fixed("2"),
    "MODEL_SILENCE_S": _fixed("90"),
    "MCP_TOOL_TIMEOUT_MS": _fixed("120000"),
    "MCP_STARTUP_TIMEOUT_MS": _fixed("10000"),
    "PROCESS_SWEEP_SCOPE": _fixed("uid"),
    "LANDLOCK": _fixed("on"),
    # Made from ModelBackend, not that parameter's value
    "CLAUDE_CODE_USE_BEDROCK": DeployedVariable(
        example="0", source="1 when the stack's ModelBackend parameter is bedrock, else 0"
    ),
    "ANTHROPIC_MODEL": _parameter("AnthropicModel", "claude-sonnet-4-5"),
    "BEDROCK_MODEL_ID": _parameter("BedrockModelId", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    "ANTHROPIC_SMALL_FAST_MODEL": _parameter(
        "SmallFastModel", "claude-haiku-4-5", empty_when="SmallFastModel is left empty (its default)"
    ),
    "ANTHROPIC_BASE_URL": _parameter(
        "AnthropicBaseUrl",
        "https://gateway.example.com",
        empty_when="AnthropicBaseUrl is left empty (its default)",
    ),
    "ANTHROPIC_API_KEY_PARAMETER": _parameter(
        "AnthropicApiKeyParameterName", "/agentbot/anthropic-api-key", empty_when="ModelBackend is bedrock"
    ),
    "MODEL_INVOKE_ROLE_ARN": DeployedVariable(
        example="arn:aws:iam::123456789012:role/agentbot-model-invoke",
        source="the ARN of the role the stack makes when its ModelBackend parameter is bedrock",
        empty_when="ModelBackend is anthropic (its default)",
    ),
}


# The runtime image's own (packages/agent-runtime/Dockerfile's ENV): under the function's.
IMAGE_ENVIRONMENT = {
    "CLAUDE_CONFIG_PATH": "/var/task/claude-config",
    "PATH": "/opt/agentbot/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LAMBDA_TASK_ROOT": "/var/task",
    "SESSIONS_ROOT": "/tmp/agentbot-sessions",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def lambda_started_environment(function_variables: Mapping[str, str]) -> dict[str, str]:
    """The environment a container of the deployed runtime starts with, given its function's
    variables (Lambda's GetFunctionConfiguration): over the image's own, under Lambda's, which
    that call leaves out and which hold a value of their shape here."""
    own = {
        name: variable.example for name, variable in DEPLOYED_VARIABLES.items() if variable.source == _LAMBDA
    }
    return {**IMAGE_ENVIRONMENT, **function_variables, **own}
