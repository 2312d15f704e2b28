"""Agent runtime container Lambda: restore a session, run one Claude Agent SDK turn, persist it."""

# ruff: noqa: E402
# First, before the heavy imports: in the Lambda runtime process this re-executes the same
# command line without the role's credentials in the environment block (see _process_secrets).
from ._process_secrets import isolate_process_secrets

isolate_process_secrets()

import typing as _typing

from session_core import is_secret_variable

from ._bedrock_route import (
    ENDPOINT_NOT_A_URL,
    ENDPOINT_VARIABLE,
    bedrock_signing_credentials,
    bedrock_upstream,
    lacks_signing_credentials,
    read_bedrock_endpoints,
    signs_for_real,
)
from ._bedrock_signer import BEDROCK_CREDENTIALS_PARAMETER
from ._chosen_models import chosen_model_ids
from ._claude_config import (
    ClaudeConfig,
    MainAgentPolicy,
    SkillConfig,
    SubagentConfig,
    default_config_path,
    load_claude_config,
)
from ._deployed_variables import DEPLOYED_VARIABLES, lambda_started_environment
from ._environment import (
    AnthropicAccess,
    BedrockAccess,
    ModelAccess,
    build_cli_environment,
    bundled_cli_path,
)
from ._errors import (
    AgentRuntimeError,
    AttachmentError,
    ClaudeConfigError,
    ClaudeConfigErrors,
    McpSecretMissingError,
    ModelBackendError,
)
from ._mcp_commands import ProgramLookup
from ._mcp_secrets import read_mcp_secret_headers
from ._model_names import anthropic_id_of, geography_of, model_id_of
from ._model_proxy import ModelProxy
from ._preflight import (
    PERMANENT_CONFIG_ERRORS,
    check_model_access,
    check_runtime_configuration,
    config_problem,
)
from ._process_secrets import aws_session, held_secrets
from ._settings import RuntimeSettings, is_anthropic_base_url, load_settings, uses_bedrock
from ._workspace import SessionWorkspace, session_workspace, workspace_paths

if _typing.TYPE_CHECKING:
    from ._build import build_runtime
    from ._turn import PhaseTimes, Runtime, transcript_project
    from ._turn_state import DEADLINE_MARGIN_S

# What runs a turn imports the Claude Agent SDK (~1 s of CPU): loaded on first use, so checking
# settings and claude-config (`agentbot dev`'s and `doctor`'s preflight) does not pay for it.
_TURN_NAMES = {
    "build_runtime": "._build",
    "PhaseTimes": "._turn",
    "Runtime": "._turn",
    "transcript_project": "._turn",
    "DEADLINE_MARGIN_S": "._turn_state",
}


if not _typing.TYPE_CHECKING:  # mypy sees the imports above, and still flags unknown names

    def __getattr__(name: str) -> _typing.Any:
        module = _TURN_NAMES.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from importlib import import_module

        value = getattr(import_module(module, __name__), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_TURN_NAMES})


__all__ = [
    "BEDROCK_CREDENTIALS_PARAMETER",
    "DEADLINE_MARGIN_S",
    "DEPLOYED_VARIABLES",
    "ENDPOINT_NOT_A_URL",
    "ENDPOINT_VARIABLE",
    "PERMANENT_CONFIG_ERRORS",
    "AgentRuntimeError",
    "AnthropicAccess",
    "AttachmentError",
    "BedrockAccess",
    "ClaudeConfig",
    "ClaudeConfigError",
    "ClaudeConfigErrors",
    "MainAgentPolicy",
    "McpSecretMissingError",
    "ModelAccess",
    "ModelBackendError",
    "ModelProxy",
    "PhaseTimes",
    "ProgramLookup",
    "Runtime",
    "RuntimeSettings",
    "SessionWorkspace",
    "SkillConfig",
    "SubagentConfig",
    "anthropic_id_of",
    "aws_session",
    "bedrock_signing_credentials",
    "bedrock_upstream",
    "build_cli_environment",
    "build_runtime",
    "bundled_cli_path",
    "check_model_access",
    "check_runtime_configuration",
    "chosen_model_ids",
    "config_problem",
    "default_config_path",
    "geography_of",
    "held_secrets",
    "is_anthropic_base_url",
    "is_secret_variable",
    "isolate_process_secrets",
    "lacks_signing_credentials",
    "lambda_started_environment",
    "load_claude_config",
    "load_settings",
    "model_id_of",
    "read_bedrock_endpoints",
    "read_mcp_secret_headers",
    "session_workspace",
    "signs_for_real",
    "transcript_project",
    "uses_bedrock",
    "workspace_paths",
]
