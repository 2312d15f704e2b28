"""The image build's check of claude-config (``python -m agent_runtime.build_check``, run by
the Dockerfile's config-check stage): a mistake fails the build naming the file and field,
where it used to deploy and fail every message. Run here as the Dockerfile runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_CONFIG = Path(__file__).resolve().parents[3] / "claude-config"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def build_check(config: Path) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's step: only the image's own variables set (no shell, no AWS)."""
    env = {
        "CLAUDE_CONFIG_PATH": str(config),
        "HOME": "/tmp",
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "agent_runtime.build_check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_the_shipped_config_passes(config_dir: Path) -> None:
    done = build_check(config_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "claude-config ok: 1 subagent(s), 1 skill(s), 2 MCP server(s)\n"


def test_each_mistake_fails_the_build_naming_the_file_and_field(config_dir: Path) -> None:
    def misspell_a_tool(agents: dict) -> None:
        agents["main"]["tools"][1] = "Bassh"

    def add_a_server_without_its_program(mcp: dict) -> None:
        mcp["mcpServers"]["search"] = {"type": "stdio", "command": "no-such-search-server"}

    edit_json(config_dir / "agents.json", misspell_a_tool)
    edit_json(config_dir / "mcp.json", add_a_server_without_its_program)
    (config_dir / "skills" / "hello-world" / "SKILL.md").write_text("---\nname: hello-world\n---\nHi.\n")
    done = build_check(config_dir)
    assert done.returncode == 1, done.stdout
    lines = done.stderr.splitlines()
    assert lines[0] == "claude-config has mistakes, so the runtime image is not built:"
    problems = sorted(line.strip() for line in lines[1:-1])
    assert [p.split(": ", 2)[:2] for p in problems] == [
        ["claude-config/agents.json", "main.tools[1]"],
        ["claude-config/mcp.json", "mcpServers.search.command"],
        ["claude-config/skills/hello-world/SKILL.md", "description"],
    ]
    assert "did you mean 'Bash'" in problems[0]
    assert "not on the runtime's PATH" in problems[1]
    assert "agentbot doctor" in lines[-1]


def test_a_variable_only_the_deployed_runtime_has_passes_and_any_other_fails(config_dir: Path) -> None:
    """Lambda and the template give the runtime AWS_REGION, TENANT...: mcp.json may name them
    without a default although the build has none; an unknown name would fail every cold start."""

    def pass_variables(names: list[str]):
        def change(mcp: dict) -> None:
            server = mcp["mcpServers"]["agentbot-tools"]
            server["env"] = {name: f"${{{name}}}" for name in names}

        return change

    edit_json(config_dir / "mcp.json", pass_variables(["AWS_REGION", "TENANT"]))
    assert build_check(config_dir).returncode == 0
    edit_json(config_dir / "mcp.json", pass_variables(["AWS_REGION", "TENANT", "SEARCH_REGION"]))
    done = build_check(config_dir)
    assert done.returncode == 1
    field = "mcpServers.agentbot-tools.env.SEARCH_REGION"
    assert f"claude-config/mcp.json: {field}: ${{SEARCH_REGION}} is not set" in done.stderr


def test_a_url_made_of_a_deployed_variable_passes_and_one_bad_whatever_its_value_fails(
    config_dir: Path,
) -> None:
    """`"url": "${NAME}"` of a variable the template gives the runtime (here ANTHROPIC_BASE_URL,
    a URL) is valid at deploy, and the build failed it: "must be an http(s) URL with a host"."""

    def serve_at(url: str):
        def change(mcp: dict) -> None:
            mcp["mcpServers"]["gateway"] = {"type": "http", "url": url}

        return change

    for url in ("${ANTHROPIC_BASE_URL}", "${ANTHROPIC_BASE_URL}/mcp"):
        edit_json(config_dir / "mcp.json", serve_at(url))
        done = build_check(config_dir)
        assert done.returncode == 0, (url, done.stderr)
    for url in ("${ANTHROPIC_BASE_URL} /mcp", "mcp.example.com/${TENANT}"):
        edit_json(config_dir / "mcp.json", serve_at(url))
        done = build_check(config_dir)
        assert done.returncode == 1, (url, done.stdout)
        assert "claude-config/mcp.json: mcpServers.gateway.url: must be an http(s) URL" in done.stderr, url
