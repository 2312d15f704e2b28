"""The names of the Claude Code CLI's built-in tools: the CLI bundled with claude-agent-sdk
(2.1.331), as the runtime runs it. This package's tests/test_builtin_tools.py asks the bundled
CLI, so an SDK upgrade that adds or drops a tool fails there."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# What the CLI lists when asked for every tool by name (its default set, plus Glob, Grep and
# the task-list tools, which it gives only when named).
BUILTIN_TOOLS = frozenset(
    {
        "Bash",
        "CronCreate",
        "CronDelete",
        "CronList",
        "Edit",
        "EnterWorktree",
        "ExitWorktree",
        "Glob",
        "Grep",
        "ListAgents",
        "Monitor",
        "NotebookEdit",
        "Read",
        "ReportFindings",
        "ScheduleWakeup",
        "SendMessage",
        "Skill",
        "Task",
        "TaskCreate",
        "TaskGet",
        "TaskList",
        "TaskStop",
        "TaskUpdate",
        "ToolSearch",
        "WebFetch",
        "WebSearch",
        "Workflow",
        "Write",
    }
)
# Names the CLI takes for one of its tools under another name
TOOL_ALIASES = {"Agent": "Task", "Task": "Agent", "KillShell": "TaskStop", "KillBash": "TaskStop"}
# Tools the CLI has but lists only with a permission-prompt tool, which the runtime never sets
NOT_LISTED = frozenset({"AskUserQuestion", "EnterPlanMode", "ExitPlanMode"})
# Tools the CLI adds when an MCP server of mcp.json offers resources (reading them is no MCP
# tool of that server: an mcp__<server>__* rule does not cover it)
MCP_RESOURCE_TOOLS = frozenset({"ListMcpResourcesTool", "ReadMcpResourceDirTool", "ReadMcpResourceTool"})
# Every name a rule in approvals.json may use for a built-in tool
KNOWN_TOOL_NAMES = BUILTIN_TOOLS | TOOL_ALIASES.keys() | NOT_LISTED | MCP_RESOURCE_TOOLS


def did_you_mean(name: str, known: Iterable[str] = KNOWN_TOOL_NAMES) -> str:
    """`` (did you mean 'Edit'?)`` for the known name closest to a misspelt ``name``, else ``""``."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
