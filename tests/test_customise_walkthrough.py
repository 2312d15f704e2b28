"""docs/customise.md's walkthrough, step by step, on a copy of claude-config/: the result
validates and loads with the runtime's own start-up check, and the worked examples run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agent_runtime import check_runtime_configuration

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "customise.md"
# ```lang file=PATH``` creates PATH; ```json merge=PATH at=a.b``` sets a.b; append=a.b extends a list.
_BLOCK = re.compile(r"^```(\w+) ([^\n]*)\n(.*?)^```$", re.S | re.M)


def walkthrough_steps() -> list[tuple[dict[str, str], str]]:
    steps = []
    for match in _BLOCK.finditer(DOC.read_text()):
        attrs = dict(part.split("=", 1) for part in match.group(2).split())
        steps.append((attrs, match.group(3)))
    return steps


def apply_step(root: Path, attrs: dict[str, str], body: str) -> None:
    """Do what the step tells the reader, in ``root`` (a copy of the repository's layout)."""
    if "file" in attrs:
        target = root / attrs["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
        return
    target = root / attrs["merge"]
    document = json.loads(target.read_text())
    path = (attrs.get("at") or attrs["append"]).split(".")
    parent: Any = document
    for key in path[:-1]:
        parent = parent.setdefault(key, {})
    if "at" in attrs:
        assert path[-1] not in parent, f"the walkthrough overwrites {attrs['at']}"
        parent[path[-1]] = json.loads(body)
    else:
        parent[path[-1]].extend(json.loads(body))
    target.write_text(json.dumps(document, indent=2))


@pytest.fixture
def customised(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "claude-config", tmp_path / "claude-config")
    steps = walkthrough_steps()
    assert len(steps) >= 8, "the walkthrough lost its steps"
    for attrs, body in steps:
        apply_step(tmp_path, attrs, body)
    return tmp_path / "claude-config"


def test_the_walkthrough_result_passes_the_runtimes_start_up_check(customised: Path, aws: Any) -> None:
    ssm = aws.client("ssm")
    ssm.put_parameter(
        Name="/agentbot/test/walkthrough-key", Value="sk-ant-x", Type="SecureString", Overwrite=True
    )
    ssm.put_parameter(
        Name="/agentbot/mcp/github-authorization", Value="Bearer ghp_x", Type="SecureString", Overwrite=True
    )
    environ = {
        **aws.resources.environment(),
        "ANTHROPIC_API_KEY_PARAMETER": "/agentbot/test/walkthrough-key",
        "CLAUDE_CONFIG_PATH": str(customised),
    }

    _settings, config = check_runtime_configuration(environ, ssm=ssm, session=None)

    assert {a.name for a in config.agents} == {"summarizer", "translator"}
    assert {s.name for s in config.skills} == {"hello-world", "dice"}
    assert set(config.mcp_servers) == {"agentbot-tools", "deepwiki", "units", "github"}
    assert config.mcp_secret_headers["github"] == {"Authorization": "/agentbot/mcp/github-authorization"}
    assert "headers_from_ssm" not in config.mcp_servers["github"]  # never handed to the CLI
    assert "Authorization" not in json.dumps(config.mcp_servers["github"])
    for server in config.mcp_servers:
        assert any(t.startswith(f"mcp__{server}__") for t in config.main.allowed_tools), server


def test_the_worked_examples_run(customised: Path) -> None:
    rolled = subprocess.run(
        [sys.executable, str(customised / "skills" / "dice" / "roll.py"), "3d6"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert re.fullmatch(r"rolls: \[\d, \d, \d\], total: \d+\n", rolled.stdout)

    calls = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "celsius_to_fahrenheit", "arguments": {"celsius": 100}},
        },
    ]
    served = subprocess.run(
        [sys.executable, "-I", str(customised / "mcp" / "units.py")],
        input="\n".join(map(json.dumps, calls)),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    replies = {r["id"]: r["result"] for r in map(json.loads, served.stdout.splitlines())}
    assert replies[2]["tools"][0]["name"] == "celsius_to_fahrenheit"
    assert replies[3]["content"][0]["text"] == "212.0 F"
