"""Agent runtime container Lambda: restore a session, run one Claude Agent SDK turn, persist it."""

# ruff: noqa: E402
# First, before the heavy imports: in the Lambda runtime process this re-executes the same
# command line without the role's credentials in the environment block (see _process_secrets).
from ._process_secrets import isolate_process_secrets

isolate_process_secrets()

from session_core import is_secret_variable

from ._build import build_runtime
from ._claude_config import (
    ClaudeConfig,
    MainAgentPolicy,
    SkillConfig,
    SubagentConfig,
    default_config_path,
    load_claude_config,
)
from ._environment import (
    AnthropicAccess,
    BedrockAccess,
    ModelAccess,
    build_cli_environment,
    bundled_cli_path,
)
from ._errors import AgentRuntimeError, AttachmentError, ClaudeConfigError, ModelBackendError
from ._model_proxy import ModelProxy
from ._preflight import (
    PERMANENT_CONFIG_ERRORS,
    check_model_access,
    check_runtime_configuration,
    config_problem,
)
from ._process_secrets import aws_session, held_secrets
from ._settings import RuntimeSettings, load_settings
from ._turn import PhaseTimes, Runtime, transcript_project
from ._turn_state import DEADLINE_MARGIN_S
from ._workspace import SessionWorkspace, session_workspace, workspace_paths

__all__ = [
    "DEADLINE_MARGIN_S",
    "PERMANENT_CONFIG_ERRORS",
    "AgentRuntimeError",
    "AnthropicAccess",
    "AttachmentError",
    "BedrockAccess",
    "ClaudeConfig",
    "ClaudeConfigError",
    "MainAgentPolicy",
    "ModelAccess",
    "ModelBackendError",
    "ModelProxy",
    "PhaseTimes",
    "Runtime",
    "RuntimeSettings",
    "SessionWorkspace",
    "SkillConfig",
    "SubagentConfig",
    "aws_session",
    "build_cli_environment",
    "build_runtime",
    "bundled_cli_path",
    "check_model_access",
    "check_runtime_configuration",
    "config_problem",
    "default_config_path",
    "held_secrets",
    "is_secret_variable",
    "isolate_process_secrets",
    "load_claude_config",
    "load_settings",
    "session_workspace",
    "transcript_project",
    "workspace_paths",
]
