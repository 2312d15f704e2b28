"""``python -m agent_runtime.build_check``: the runtime image's build checks the claude-config it
bakes in (packages/agent-runtime/Dockerfile), with the loader every runtime container starts
with, offline.

A mistake in system_prompt.md, agents.json, a skill, mcp.json or approvals.json stops the build
(`sam build`) with a line naming the file and field for each, where the image used to deploy and
answer every message "the bot is misconfigured". What only a deployed stack can tell (the model
key, the MCP secret headers in SSM, mcp.json's ``${NAME}``s with the values the stack's runtime
has) is `agentbot doctor --stack`'s to check; a variable a stack may deploy empty is warned of.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ._claude_config import ClaudeConfig, default_config_path, load_claude_config
from ._deployed_variables import DEPLOYED_VARIABLES, lambda_started_environment
from ._errors import ClaudeConfigError
from ._mcp_commands import AS_THIS_PROCESS


def _as_deployed() -> dict[str, str]:
    # Only what a container of the image starts with: the image's ENV, the template's variables
    # and Lambda's. The build stage's own (its ENV and ARGs, its base image's, the build
    # machine's) never reach the function, so they count as unset here.
    examples = {name: variable.example for name, variable in DEPLOYED_VARIABLES.items()}
    return lambda_started_environment(examples)


def check_baked_config(root: Path) -> ClaudeConfig:
    """Load claude-config at ``root`` as a container of the image will: with only the deployed
    runtime's variables, each holding a value of the shape it has there, and each command MCP
    server's program on the image's PATH. Raises ClaudeConfigError naming every problem found."""
    return load_claude_config(root, environ=_as_deployed(), programs=AS_THIS_PROCESS)


def problems_if_empty(root: Path) -> list[tuple[str, ClaudeConfigError]]:
    """(variable, problem) for each problem a cold start meets in a stack that deploys one of
    the variables empty (ANTHROPIC_BASE_URL without the AnthropicBaseUrl parameter): the build
    cannot know the stack's parameters, so these are the operator's to know, not a failure."""
    found: list[tuple[str, ClaudeConfigError]] = []
    for name, variable in DEPLOYED_VARIABLES.items():
        if variable.empty_when is None:
            continue
        try:
            load_claude_config(root, environ={**_as_deployed(), name: ""}, programs=AS_THIS_PROCESS)
        except ClaudeConfigError as exc:
            found += [(name, problem) for problem in exc.problems]
    return found


def _shown(file: str, root: Path) -> str:
    """A file as the repository names it (claude-config/agents.json), not where the build put it."""
    path = Path(file)
    if path.is_relative_to(root):
        return str(Path("claude-config") / path.relative_to(root))
    return file


def _where(problem: ClaudeConfigError, root: Path) -> str:
    return _shown(problem.file, root) + (f": {problem.field}" if problem.field else "")


def _at_deploy(problem: ClaudeConfigError) -> str:
    """What the deployed variables a problem came from hold, as the build took them."""
    held = [
        f"${{{name}}} is {DEPLOYED_VARIABLES[name].source}, such as {DEPLOYED_VARIABLES[name].example!r}"
        for name in problem.variables
        if name in DEPLOYED_VARIABLES
    ]
    return f"; at deploy {', '.join(held)}" if held else ""


def main(argv: Sequence[str] | None = None, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Exit 0 with a summary when claude-config loads (and a warning for what fails only in a
    stack deployed with a variable empty); 1 with a line per problem when not."""
    del argv  # no options
    root = default_config_path()  # CLAUDE_CONFIG_PATH, as the image's ENV sets it
    try:
        config = check_baked_config(root)
    except ClaudeConfigError as exc:
        err.write("claude-config has mistakes, so the runtime image is not built:\n")
        for problem in exc.problems:
            err.write(f"  {_where(problem, root)}: {problem.reason}{_at_deploy(problem)}\n")
        err.write("Fix them and build again (`uv run agentbot doctor` checks the same without a build).\n")
        return 1
    out.write(
        f"claude-config ok: {len(config.agents)} subagent(s), {len(config.skills)} skill(s), "
        f"{len(config.mcp_servers)} MCP server(s)\n"
    )
    for name, problem in problems_if_empty(root):
        err.write(
            f"warning: {_where(problem, root)}: {problem.reason} when the stack's "
            f"{DEPLOYED_VARIABLES[name].empty_when}, and every cold start then fails: deploy with it "
            f"set, or write a default that works without it (${{{name}:-...}}); "
            "`agentbot doctor --stack NAME` checks a deployed stack's values\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
