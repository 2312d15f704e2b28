"""A chat that began under one claude-config goes on after the operator deploys another:
real CLI, scripted model, each deploy a fresh container reading its own copy of the config."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent_runtime import Runtime
from agentbot_testing import claude_config_without_approvals

pytestmark = pytest.mark.slow


@pytest.fixture
def deploy(
    make_runtime: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[..., Runtime]:
    """``deploy(change)``: a runtime as a new container of a deploy whose claude-config is the
    shipped one (without approvals) edited by ``change(directory)``."""
    deploys = iter(range(1, 100))

    def make(change: Callable[[Path], None] = lambda config: None) -> Runtime:
        config = claude_config_without_approvals(tmp_path / f"deploy-{next(deploys)}")
        change(config)
        monkeypatch.setenv("CLAUDE_CONFIG_PATH", str(config))
        return make_runtime(env={"CLAUDE_CONFIG_PATH": str(config)})

    return make


def _edit_json(file: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    content = json.loads(file.read_text())
    edit(content)
    file.write_text(json.dumps(content))


def _without_agentbot_tools(config: Path) -> None:
    """The command MCP server removed, and every name of its tools with it."""
    _edit_json(config / "mcp.json", lambda mcp: mcp["mcpServers"].pop("agentbot-tools"))

    def drop_its_tools(agents: dict[str, Any]) -> None:
        for tools in (agents["main"]["allowed_tools"], agents["agents"]["summarizer"]["tools"]):
            tools[:] = [name for name in tools if not name.startswith("mcp__agentbot-tools__")]

    _edit_json(config / "agents.json", drop_its_tools)


def _without_skill_and_subagent(config: Path) -> None:
    shutil.rmtree(config / "skills" / "hello-world")
    (config / "agents" / "summarizer.md").unlink()
    _edit_json(config / "agents.json", lambda agents: agents["agents"].clear())


def _system_text(call: Any) -> str:
    return json.dumps(call.body["system"])


def test_a_new_system_prompt_reaches_chats_that_began_before_it(deploy, model_server, turn_request) -> None:
    """The CLI keeps the system prompt a session started with unless told not to: a chat in use
    for weeks would never see the operator's new instructions (or a fixed mistake) until /new."""
    assert deploy().run_turn(turn_request("hello", turn_id=1)).ok
    old_prompt = _system_text(model_server.model_calls[-1])
    assert "You are agentbot" in old_prompt

    def new_prompt(config: Path) -> None:
        (config / "system_prompt.md").write_text("You are Quill, who answers in rhyme.\n")

    after = deploy(new_prompt).run_turn(turn_request("and now?", turn_id=2))

    assert after.ok and after.text == "turns=2 last=and now?", after
    system = _system_text(model_server.model_calls[-1])
    assert "You are Quill, who answers in rhyme." in system and "You are agentbot" not in system


def test_a_removed_mcp_servers_tools_are_no_longer_offered_and_the_chat_keeps_their_results(
    deploy, model_server, turn_request
) -> None:
    """Offered the tools the chat began with, the model would call a server that is gone."""
    counted = deploy().run_turn(turn_request("mcp: one two three", turn_id=1))
    assert counted.ok and "words=3" in counted.text, counted

    after = deploy(_without_agentbot_tools).run_turn(turn_request("what did you count?", turn_id=2))

    assert after.ok and after.text == "turns=2 last=what did you count?", after
    last = model_server.model_calls[-1].body
    offered = {tool["name"] for tool in last["tools"]}
    assert "Bash" in offered and not any(name.startswith("mcp__agentbot-tools__") for name in offered)
    assert "words=3" in json.dumps(last["messages"])  # the earlier result is still in the history


def test_a_removed_skill_and_subagent_leave_the_chat_going_with_its_history(
    deploy, model_server, turn_request
) -> None:
    """Asked for them again, the agent is told they are gone and says so: the turn answers."""
    shipped = deploy()
    assert "Hello, Ada!" in shipped.run_turn(turn_request("skill: Ada", turn_id=1)).text
    assert "SUBAGENT-SUMMARY" in shipped.run_turn(turn_request("agent: a b c", turn_id=2)).text

    trimmed = deploy(_without_skill_and_subagent)
    skill = trimmed.run_turn(turn_request("skill: Bob", turn_id=3))
    agent = trimmed.run_turn(turn_request("agent: d e f", turn_id=4))
    plain = trimmed.run_turn(turn_request("still there?", turn_id=5))

    assert skill.ok and "Unknown skill: hello-world" in skill.text, skill
    assert agent.ok and "'summarizer' not found" in agent.text, agent
    assert plain.ok and plain.text == "turns=5 last=still there?", plain
    history = json.dumps(model_server.model_calls[-1].body["messages"])
    assert "Hello, Ada!" in history and "SUBAGENT-SUMMARY" in history
