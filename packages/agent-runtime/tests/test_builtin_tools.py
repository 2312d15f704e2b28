"""The built-in tool names approvals.json is checked against are the bundled CLI's own: a CLI
that adds a tool to its default set, or drops one, fails here instead of a rule naming it being
refused (or a misspelt rule let through)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from agent_runtime import bundled_cli_path
from agent_runtime._builtin_tools import BUILTIN_TOOLS, MCP_RESOURCE_TOOLS, TOOL_ALIASES

pytestmark = pytest.mark.slow


def _tools_listed(tmp_path: Path, asked: str, *more: str) -> set[str]:
    """The tools the CLI's first line (its init message) lists when given ``--tools asked``.
    No model is reachable: the CLI writes that line before it calls one, and is stopped then."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CLAUDE_CONFIG_DIR": str(tmp_path / "config"),
        "ANTHROPIC_API_KEY": "sk-ant-unused",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",  # as the runtime runs it
    }
    argv = [
        bundled_cli_path(),
        "-p",
        "hi",
        "--tools",
        asked,
        "--output-format",
        "stream-json",
        "--verbose",
        *more,
    ]
    with subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    ) as cli:
        try:
            assert cli.stdout is not None
            first = json.loads(cli.stdout.readline())
        finally:
            cli.kill()
    assert first.get("subtype") == "init", first
    return set(first["tools"])


def test_the_known_built_in_tools_are_the_bundled_clis(tmp_path: Path) -> None:
    # What an agent gets when main.tools is unset: every one must be a known name.
    assert _tools_listed(tmp_path, "default") <= BUILTIN_TOOLS
    # Asked for each known name (and each other name it takes), the CLI still has them all.
    assert _tools_listed(tmp_path, ",".join(sorted(BUILTIN_TOOLS | TOOL_ALIASES.keys()))) == BUILTIN_TOOLS


# A command MCP server that offers one resource and no tool (MCP's JSON-RPC over stdio)
_RESOURCE_SERVER = """
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    method = message["method"]
    result = {
        "initialize": {
            "protocolVersion": message["params"]["protocolVersion"],
            "capabilities": {"tools": {}, "resources": {}},
            "serverInfo": {"name": "notes", "version": "1"},
        },
        "tools/list": {"tools": []},
        "resources/list": {"resources": [{"uri": "note://hello", "name": "hello"}]},
    }.get(method, {})
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
"""


def test_the_mcp_resource_tools_are_the_bundled_clis(tmp_path: Path) -> None:
    """With an MCP server that offers resources the agents also get the CLI's resource tools:
    a rule asking before them is no misspelt name."""
    (tmp_path / "notes.py").write_text(_RESOURCE_SERVER)
    mcp = {
        "mcpServers": {
            "notes": {"type": "stdio", "command": sys.executable, "args": [str(tmp_path / "notes.py")]}
        }
    }
    (tmp_path / "mcp.json").write_text(json.dumps(mcp))
    listed = _tools_listed(tmp_path, "default", "--mcp-config", str(tmp_path / "mcp.json"))
    assert listed - _tools_listed(tmp_path, "default") == MCP_RESOURCE_TOOLS
