"""``python -m agent_runtime.build_check``: the runtime image's build checks the claude-config it
bakes in (packages/agent-runtime/Dockerfile), with the loader every runtime container starts
with, offline.

A mistake in system_prompt.md, agents.json, a skill, mcp.json or approvals.json stops the build
(`sam build`) with a line naming the file and field for each, where the image used to deploy and
answer every message "the bot is misconfigured". What only a deployed stack can tell (the model
key, the MCP secret headers in SSM) is `agentbot doctor --stack`'s to check.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from ._claude_config import ClaudeConfig, default_config_path, load_claude_config
from ._errors import ClaudeConfigError
from ._mcp_commands import AS_THIS_PROCESS
from ._mcp_config import SET_AT_DEPLOY

# Variables the deployed runtime has and the build does not: Lambda's own, and those
# infra/template.yaml sets (tests/test_template.py keeps this list in step with it). mcp.json's
# ``${NAME}`` of one of these is taken as set; any other unset one without a default is a mistake.
DEPLOYED_VARIABLES = frozenset(
    {
        # Lambda's
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "TZ",
        # the template's (Globals and RuntimeFunction)
        "SESSIONS_TABLE",
        "SESSIONS_BUCKET",
        "TENANT",
        "SESSION_TTL_DAYS",
        "LOG_LEVEL",
        "SESSIONS_ROOT",
        "SESSION_DISK_LIMIT_MB",
        "LEASE_DURATION_S",
        "MODEL_TIMEOUT_MS",
        "MODEL_MAX_RETRIES",
        "MODEL_SILENCE_S",
        "PROCESS_SWEEP_SCOPE",
        "LANDLOCK",
        "CLAUDE_CODE_USE_BEDROCK",
        "ANTHROPIC_MODEL",
        "BEDROCK_MODEL_ID",
        "ANTHROPIC_SMALL_FAST_MODEL",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_API_KEY_PARAMETER",
        "MODEL_INVOKE_ROLE_ARN",
    }
)


def check_baked_config(root: Path, environ: Mapping[str, str]) -> ClaudeConfig:
    """Load claude-config at ``root`` as a container of the image will: each command MCP
    server's program must be on this PATH. Raises ClaudeConfigError naming every problem found."""
    deployed = dict.fromkeys(DEPLOYED_VARIABLES, SET_AT_DEPLOY)
    return load_claude_config(root, environ={**deployed, **environ}, programs=AS_THIS_PROCESS)


def _shown(file: str, root: Path) -> str:
    """A file as the repository names it (claude-config/agents.json), not where the build put it."""
    path = Path(file)
    if path.is_relative_to(root):
        return str(Path("claude-config") / path.relative_to(root))
    return file


def main(argv: Sequence[str] | None = None, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Exit 0 with a summary when claude-config loads; 1 with a line per problem when not."""
    del argv  # no options
    environ = dict(os.environ)
    root = default_config_path()  # CLAUDE_CONFIG_PATH, as the image's ENV sets it
    try:
        config = check_baked_config(root, environ)
    except ClaudeConfigError as exc:
        err.write("claude-config has mistakes, so the runtime image is not built:\n")
        for problem in exc.problems:
            where = _shown(problem.file, root) + (f": {problem.field}" if problem.field else "")
            err.write(f"  {where}: {problem.reason}\n")
        err.write("Fix them and build again (`uv run agentbot doctor` checks the same without a build).\n")
        return 1
    out.write(
        f"claude-config ok: {len(config.agents)} subagent(s), {len(config.skills)} skill(s), "
        f"{len(config.mcp_servers)} MCP server(s)\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
