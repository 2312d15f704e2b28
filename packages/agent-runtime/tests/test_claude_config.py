"""claude-config is validated once per container; every error names the file and the field."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agent_runtime import ClaudeConfigError, ProgramLookup, load_claude_config
from agent_runtime._builtin_tools import KNOWN_TOOL_NAMES
from agent_runtime._claude_config import MAX_SYSTEM_PROMPT_BYTES

REPO_CONFIG = Path(__file__).resolve().parents[3] / "claude-config"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, target)
    return target


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_shipped_config_has_a_subagent_a_skill_and_both_kinds_of_mcp_server() -> None:
    config = load_claude_config(REPO_CONFIG, environ={})
    assert config.system_prompt.startswith("You are agentbot")
    (agent,) = config.agents
    assert agent.name == "summarizer" and "three short bullet points" in agent.prompt
    assert [s.name for s in config.skills] == ["hello-world"]
    servers = config.mcp_servers
    assert servers["agentbot-tools"]["type"] == "stdio"
    assert servers["agentbot-tools"]["command"] == sys.executable  # ${PYTHON}
    assert servers["agentbot-tools"]["args"] == ["-I", f"{REPO_CONFIG}/mcp/agentbot_tools.py"]
    assert servers["deepwiki"] == {"type": "http", "url": "https://mcp.deepwiki.com/mcp"}
    assert config.main.permission_mode == "bypassPermissions"


def test_environment_overrides_an_mcp_url() -> None:
    config = load_claude_config(REPO_CONFIG, environ={"DEEPWIKI_MCP_URL": "http://127.0.0.1:1/mcp"})
    assert config.mcp_servers["deepwiki"]["url"] == "http://127.0.0.1:1/mcp"


@pytest.mark.parametrize(
    "url",
    [
        "mcp.deepwiki.com/mcp",
        "https://",
        "https:///mcp",
        "https://mcp.deepwiki com/mcp",
        "https://mcp.deepwiki.com:99999/mcp",
        "https://mcp.deepwiki.com:80a/mcp",
        "ftp://mcp.deepwiki.com/mcp",
        "https://[::1/mcp",  # urlsplit raised ValueError: the start crashed naming nothing
        "https://mcp.deepwiki.com]/mcp",
    ],
)
def test_an_mcp_url_the_cli_cannot_connect_to_is_named_at_start(config_dir: Path, url: str) -> None:
    """Only a missing scheme was refused: no host, a space or a bad port passed every check and
    failed as each turn started the server."""
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["deepwiki"].update(url=url))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field) == ("mcp.json", "mcpServers.deepwiki.url")
    assert caught.value.reason == "must be an http(s) URL with a host, such as https://mcp.example.com/mcp"


def test_an_http_server_without_its_type_is_told_to_add_it_not_to_give_a_command(config_dir: Path) -> None:
    """A server's type defaults to stdio: one written with only a url was told its `command`
    is required."""
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["deepwiki"].pop("type"))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.field == "mcpServers.deepwiki.type"
    assert caught.value.reason == 'is required for a server with a url: add "type": "http" (or "sse")'


def test_a_bad_mcp_url_from_the_environment_names_the_variable_it_came_from() -> None:
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(REPO_CONFIG, environ={"DEEPWIKI_MCP_URL": "htps://mcp.deepwiki.com/mcp"})
    assert caught.value.field == "mcpServers.deepwiki.url"
    assert caught.value.reason.endswith("(its value comes from ${DEEPWIKI_MCP_URL})")


def _url_refused_at_start(config_dir: Path, url: str, environ: dict[str, str]) -> str:
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["deepwiki"].update(url=url))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ=environ)
    assert caught.value.field == "mcpServers.deepwiki.url"
    return caught.value.reason


def test_a_url_variable_deployed_empty_is_named_as_empty_at_start(config_dir: Path) -> None:
    """A stack without AnthropicBaseUrl sets ANTHROPIC_BASE_URL empty: the start said it was
    "not set", and the operator found it set in the function's configuration."""
    reason = _url_refused_at_start(config_dir, "${ANTHROPIC_BASE_URL}/mcp", {"ANTHROPIC_BASE_URL": ""})
    assert reason == "${ANTHROPIC_BASE_URL} is empty and has no default"
    reason = _url_refused_at_start(config_dir, "${ANTHROPIC_BASE_URL}/mcp", {})
    assert reason == "${ANTHROPIC_BASE_URL} is not set and has no default"


def test_a_url_that_expands_to_nothing_says_so_at_start(config_dir: Path) -> None:
    reason = _url_refused_at_start(config_dir, "${MCP_URL:-}", {})
    assert reason == (
        "must be an http(s) URL with a host, such as https://mcp.example.com/mcp "
        "(its value comes from ${MCP_URL}, and is empty)"
    )


def test_a_bad_url_of_several_variables_names_each_of_them_at_start(config_dir: Path) -> None:
    """Only the first was named: here the host, where the port was the one to fix."""
    environ = {"MCP_HOST": "mcp.example.com", "MCP_PORT": "eighty"}
    reason = _url_refused_at_start(config_dir, "https://${MCP_HOST}:${MCP_PORT}/mcp", environ)
    assert reason.endswith("(its value comes from ${MCP_HOST}, ${MCP_PORT})"), reason


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1/mcp", "https://[::1]:8443/mcp", "https://mcp.example.com/mcp?v=2"]
)
def test_mcp_urls_of_every_shape_the_cli_takes_pass(url: str) -> None:
    config = load_claude_config(REPO_CONFIG, environ={"DEEPWIKI_MCP_URL": url})
    assert config.mcp_servers["deepwiki"]["url"] == url


def test_a_server_script_named_relative_to_claude_config_is_named_at_start(config_dir: Path) -> None:
    """The server starts in the chat's directory: `mcp/agentbot_tools.py` passed every check,
    then the server failed at every turn and the agent answered without its tools."""
    server = {"command": "${PYTHON}", "args": ["-I", "mcp/agentbot_tools.py"]}
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["agentbot-tools"].update(server))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.field == "mcpServers.agentbot-tools.args[1]"
    assert caught.value.reason.endswith("write ${CLAUDE_CONFIG_PATH}/mcp/agentbot_tools.py")

    # what the server takes besides files (a flag, a module, a word) is its own business
    server = {"command": "${PYTHON}", "args": ["-I", "-m", "mcp", "stdio"]}
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["agentbot-tools"].update(server))
    assert load_claude_config(config_dir, environ={}).mcp_servers["agentbot-tools"]["args"][2] == "mcp"


@pytest.mark.parametrize(("loose", "moved"), [("translate.md", "translate"), ("SKILL.md", "<name>")])
def test_a_skill_file_outside_a_skill_directory_is_named_not_ignored(
    config_dir: Path, loose: str, moved: str
) -> None:
    """The CLI finds skills only as skills/<name>/SKILL.md: one dropped into skills/ was never
    used, and nothing said so."""
    (config_dir / "skills" / loose).write_text("---\nname: translate\ndescription: Translates.\n---\nBody\n")
    (config_dir / "skills" / "README.md").write_text("# Our skills\n")  # notes are no skill
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field) == (loose, None)
    assert caught.value.reason == f"is no skill: a skill is a directory, move it to skills/{moved}/SKILL.md"


def test_a_link_in_a_skill_that_leads_nowhere_is_named_at_start_not_at_every_turn(config_dir: Path) -> None:
    """The skill's directory is copied for each turn: a link to a file outside claude-config
    (there on the operator's machine, not in the image) loaded, then failed every turn."""
    skill = config_dir / "skills" / "hello-world"
    (skill / "data").mkdir()
    (skill / "data" / "prices.csv").symlink_to("../../../../shared/prices.csv")
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (caught.value.file, caught.value.field) == (str(skill / "data" / "prices.csv"), None)
    target = "'../../../../shared/prices.csv'"
    assert caught.value.reason.startswith(f"is a link to {target}, which does not exist")


@pytest.mark.parametrize("link", ["mcp/helper.py", "agents/shared/style.md", "notes/prices.csv"])
def test_a_link_that_leads_nowhere_anywhere_in_claude_config_is_named_at_start(
    config_dir: Path, link: str
) -> None:
    """Only skills/ was checked: a command server's helper linked from the operator's machine
    loaded (and passed `agentbot doctor`), then failed in every turn."""
    path = config_dir / link
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("../../../shared/helper.py")
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert [(p.file, p.field) for p in caught.value.problems] == [(str(path), None)]
    assert caught.value.reason.startswith("is a link to '../../../shared/helper.py', which does not exist")


def test_a_hidden_link_outside_the_skills_is_not_read_so_not_checked(config_dir: Path) -> None:
    (config_dir / "mcp" / ".cache").symlink_to("nowhere")
    (config_dir / ".editor").symlink_to("/etc")
    assert load_claude_config(config_dir, environ={}).skills


@pytest.mark.parametrize(
    "link", ["skills/hello-world/notes", "skills/hello-world/.notes", "mcp/helper.py", "system.d/env"]
)
@pytest.mark.parametrize("target", ["/proc/self/environ", "/etc/hostname", "/etc"])
def test_a_link_out_of_claude_config_is_refused_at_start(config_dir: Path, link: str, target: str) -> None:
    """A skill's files are copied for each turn, links followed, where the agent's tools read
    them: a link to /proc/self/environ would hand them the runtime's environment (its AWS
    credentials); other files are read by what the agent runs."""
    path = config_dir / link
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert [(p.file, p.field) for p in caught.value.problems] == [(str(path), None)]
    assert caught.value.reason.startswith(f"is a link to {target!r}, outside claude-config")


def test_a_link_out_of_claude_config_through_another_link_is_refused(config_dir: Path) -> None:
    (config_dir / "mcp" / "env").symlink_to("/proc/self/environ")
    skill_link = config_dir / "skills" / "hello-world" / "env"
    skill_link.symlink_to("../../mcp/env")
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert sorted(p.file for p in caught.value.problems) == sorted(
        [str(config_dir / "mcp" / "env"), str(skill_link)]
    )


def test_links_that_stay_inside_claude_config_are_followed(config_dir: Path) -> None:
    skill = config_dir / "skills" / "hello-world"
    (skill / "prompt.md").symlink_to("../../system_prompt.md")
    (skill / "helpers").symlink_to("../../mcp")
    (config_dir / "agents" / "shared").symlink_to("../agents")
    config = load_claude_config(config_dir, environ={})
    assert [s.name for s in config.skills] == ["hello-world"]


@pytest.mark.parametrize("target", [".", "..", "../.."])
def test_a_link_in_a_skill_that_leads_back_above_itself_is_named_at_start_not_at_every_turn(
    config_dir: Path, target: str
) -> None:
    """The copy made for each turn follows links: one back to the skill or above it loaded fine
    and then failed every turn, copying itself until Python gave up."""
    skill = config_dir / "skills" / "hello-world"
    (skill / "data").mkdir()
    (skill / "data" / "again").symlink_to(target)
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (caught.value.file, caught.value.field) == (str(skill / "data" / "again"), None)
    assert caught.value.reason.startswith(f"is a link to {target!r}, a directory it is in: the copy")


def test_a_skill_file_named_in_the_wrong_case_is_named_with_the_rename(config_dir: Path) -> None:
    """Found on a case-insensitive disk (macOS), missed by the runtime's Linux."""
    skill = config_dir / "skills" / "hello-world"
    (skill / "SKILL.md").rename(skill / "Skill.md")
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.file == str(skill / "SKILL.md")
    assert caught.value.reason == "file does not exist (rename Skill.md to SKILL.md)"


def test_missing_prompt_file_names_the_agent_field(config_dir: Path) -> None:
    (config_dir / "agents" / "summarizer.md").unlink()
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.file.endswith("agents.json")
    assert caught.value.field == "agents.summarizer.prompt_file"


def test_a_prompt_file_path_no_file_can_have_is_named_not_a_crash(config_dir: Path) -> None:
    """A NUL in prompt_file (valid JSON: "\\u0000") stopped the check, doctor and dev's start
    with a ValueError traceback instead of naming the field."""
    edit_json(
        config_dir / "agents.json", lambda d: d["agents"]["summarizer"].update(prompt_file="agents/s\x00.md")
    )
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.field == "agents.summarizer.prompt_file", caught.value


@pytest.mark.parametrize(
    "change, field",
    [
        ({"command": "python3\x00"}, "command"),
        ({"args": ["-I", "${CLAUDE_CONFIG_PATH}/mcp/agentbot_tools.py\x00"]}, "args[1]"),
        ({"env": {"LOG_LEVEL": "debug\x00"}}, "env.LOG_LEVEL"),
    ],
)
def test_a_nul_in_what_a_command_server_starts_with_is_named_not_a_crash(
    config_dir: Path, change: dict[str, Any], field: str
) -> None:
    """A NUL (valid JSON: "\\u0000") in a command server's command or arguments passed the check,
    then its start failed at every turn with a traceback."""
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["agentbot-tools"].update(change))
    for programs in (None, ProgramLookup()):  # the deployed check, and doctor's and dev's
        with pytest.raises(ClaudeConfigError) as caught:
            load_claude_config(config_dir, environ={}, programs=programs)
        assert (Path(caught.value.file).name, caught.value.field) == (
            "mcp.json",
            f"mcpServers.agentbot-tools.{field}",
        )
        assert caught.value.reason == "must not contain a NUL character"


@pytest.mark.parametrize(
    "change, field, character",
    [
        ({"url": "https://mcp.deepwiki.com/mcp\x00"}, "url", "U+0000"),
        ({"url": "https://mcp.deep\x07wiki.com/mcp"}, "url", "U+0007"),
        ({"headers": {"X-Team\x00": "ops"}}, "headers.X-Team\\x00", "U+0000"),
        ({"headers": {"X-Team": "ops\x00"}}, "headers.X-Team", "U+0000"),
        # a line break would end the header and start another the CLI sends
        ({"headers": {"X-Team": "ops\r\nX-Injected: 1"}}, "headers.X-Team", "U+000D"),
        ({"url": "${WIKI_URL}"}, "url", "U+001B"),  # from the environment
    ],
)
def test_a_control_character_in_an_http_servers_url_or_headers_is_named(
    config_dir: Path, change: dict[str, Any], field: str, character: str
) -> None:
    """A NUL (valid JSON: "\\u0000") or another control character in an HTTP server's url or a
    header passed the check, then the server could not be reached at any turn."""
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["deepwiki"].update(change))
    environ = {"WIKI_URL": "https://mcp.deepwiki.com/\x1b[2Jmcp"}
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ=environ)
    assert (Path(caught.value.file).name, caught.value.field) == ("mcp.json", f"mcpServers.deepwiki.{field}")
    assert caught.value.reason == f"must not contain a control character ({character})"


def test_a_nul_in_the_name_of_a_command_servers_variable_is_named_not_a_crash(config_dir: Path) -> None:
    """A NUL in a variable's name passed the check that refuses one in its value: no program
    can be started with it either."""
    edit_json(
        config_dir / "mcp.json", lambda d: d["mcpServers"]["agentbot-tools"].update(env={"LOG\x00LEVEL": "x"})
    )
    for programs in (None, ProgramLookup()):  # the deployed check, and doctor's and dev's
        with pytest.raises(ClaudeConfigError) as caught:
            load_claude_config(config_dir, environ={}, programs=programs)
        assert (Path(caught.value.file).name, caught.value.field) == (
            "mcp.json",
            "mcpServers.agentbot-tools.env",
        )
        assert "NUL" in caught.value.reason


def test_prompt_file_that_is_not_given_is_reported(config_dir: Path) -> None:
    edit_json(config_dir / "agents.json", lambda d: d["agents"]["summarizer"].pop("prompt_file"))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.field == "agents.summarizer.prompt_file" and "required" in caught.value.reason


@pytest.mark.parametrize("tool", ["mcp__agentbot-tools__*", "Bash*", "mcp__agentbot-tools"])
def test_wildcards_and_partial_tool_names_are_refused(config_dir: Path, tool: str) -> None:
    edit_json(config_dir / "agents.json", lambda d: d["agents"]["summarizer"]["tools"].append(tool))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.field == "agents.summarizer.tools[3]"
    assert caught.value.file.endswith("agents.json")


def test_tool_of_an_undefined_mcp_server_is_refused(config_dir: Path) -> None:
    edit_json(config_dir / "agents.json", lambda d: d["main"]["tools"].append("mcp__nowhere__x"))
    with pytest.raises(ClaudeConfigError, match="nowhere") as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.field.startswith("main.tools[")


def test_a_misspelt_tool_of_a_subagent_is_named_and_no_rule_for_it_passes(config_dir: Path) -> None:
    """The CLI would give the subagent no such tool without a word; and while its tools count as
    the agents' tools, a rule asking before "Reed" would pass, and Read would run unasked."""
    edit_json(config_dir / "agents.json", lambda d: d["agents"]["summarizer"]["tools"].__setitem__(1, "Reed"))
    rules = [{"tool": "Read"}, {"tool": "Reed"}]
    (config_dir / "approvals.json").write_text(json.dumps({"require_approval": rules}))

    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})

    assert [(Path(p.file).name, p.field, p.reason) for p in caught.value.problems] == [
        ("agents.json", "agents.summarizer.tools[1]", "unknown tool 'Reed' (did you mean 'Read'?)"),
        (
            "approvals.json",
            "require_approval[1].tool",
            "'Reed' matches no built-in tool of Claude Code (did you mean 'Read'?); "
            "a misspelt name would let that tool run without asking",
        ),
    ]


def test_a_subagent_may_name_every_built_in_tool_and_the_tools_of_mcp_json(config_dir: Path) -> None:
    tools = [*sorted(KNOWN_TOOL_NAMES), "mcp__agentbot-tools__word_count", "mcp__deepwiki__ask_question"]
    edit_json(config_dir / "agents.json", lambda d: d["agents"]["summarizer"].update(tools=tools))
    (agent,) = load_claude_config(config_dir, environ={}).agents
    assert agent.tools == tuple(tools)


def test_a_misspelt_tool_of_the_main_agent_is_named_at_load_not_at_the_first_turn(config_dir: Path) -> None:
    """Not a warning in the log of a turn that ran without Bash, or with WebFetch left offered."""

    def misspelt(agents: dict[str, Any]) -> None:
        agents["main"]["tools"].insert(0, "Bassh")
        agents["main"]["allowed_tools"].insert(1, "Grepp")
        agents["main"]["disallowed_tools"] = ["WebFetchh", "read_file"]

    edit_json(config_dir / "agents.json", misspelt)

    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})

    assert [(Path(p.file).name, p.field, p.reason) for p in caught.value.problems] == [
        ("agents.json", "main.tools[0]", "unknown tool 'Bassh' (did you mean 'Bash'?)"),
        ("agents.json", "main.allowed_tools[1]", "unknown tool 'Grepp' (did you mean 'Grep'?)"),
        ("agents.json", "main.disallowed_tools[0]", "unknown tool 'WebFetchh' (did you mean 'WebFetch'?)"),
        (
            "agents.json",
            "main.disallowed_tools[1]",
            "unknown tool 'read_file' (no built-in tool of Claude Code has that name)",
        ),
    ]


def test_unknown_mcp_type_names_the_server(config_dir: Path) -> None:
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["deepwiki"].update(type="websocket"))
    with pytest.raises(ClaudeConfigError, match="websocket") as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.file.endswith("mcp.json") and caught.value.field == "mcpServers.deepwiki.type"


def test_command_server_without_command_is_refused(config_dir: Path) -> None:
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["agentbot-tools"].pop("command"))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.field == "mcpServers.agentbot-tools.command"


@pytest.mark.parametrize(
    "text, field",
    [
        ("# no front matter\n", "front matter"),
        ('---\nname: hello-world\ndescription: "unclosed\n---\nbody\n', "front matter"),
        ("---\nname: hello-world\n---\nbody\n", "description"),
        ("---\nname: Other_Name\ndescription: x\n---\n", "name"),
    ],
)
def test_malformed_skill_front_matter_names_the_skill_file(config_dir: Path, text: str, field: str) -> None:
    (config_dir / "skills" / "hello-world" / "SKILL.md").write_text(text)
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.file.endswith("skills/hello-world/SKILL.md") and caught.value.field == field


def test_invalid_json_and_permission_mode_are_reported(config_dir: Path) -> None:
    (config_dir / "mcp.json").write_text("{not json")
    with pytest.raises(ClaudeConfigError, match="line 1"):
        load_claude_config(config_dir, environ={})
    shutil.copy(REPO_CONFIG / "mcp.json", config_dir / "mcp.json")
    edit_json(config_dir / "agents.json", lambda d: d["main"].update(permission_mode="yolo"))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.field == "main.permission_mode"


def test_missing_directory_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ClaudeConfigError, match="CLAUDE_CONFIG_PATH"):
        load_claude_config(tmp_path / "absent", environ={})


@pytest.mark.parametrize(
    ("main", "field", "reason"),
    [
        (
            {"alowed_tools": ["Bash"]},
            "main.alowed_tools",
            "unknown field (known: tools, allowed_tools, disallowed_tools, permission_mode, "
            "max_turns, model)",
        ),
        ({"tools": "Bash"}, "main.tools", "must be a list, not a string"),
        ({"allowed_tools": ["Bash", 3]}, "main.allowed_tools[1]", "must be a string, not a whole number"),
        ({"max_turns": "10"}, "main.max_turns", "must be a whole number, not a string"),
        ({"max_turns": 0}, "main.max_turns", "must be a whole number of at least 1"),
        ({"max_turns": 1.5}, "main.max_turns", "must be a whole number, not a decimal number"),
        (
            {"permission_mode": "yolo"},
            "main.permission_mode",
            "must be one of default, acceptEdits, plan, bypassPermissions, dontAsk, not 'yolo'",
        ),
    ],
)
def test_a_mistake_in_main_is_named_in_plain_words(
    config_dir: Path, main: dict, field: str, reason: str
) -> None:
    """A misspelt field would otherwise be ignored (and every tool left unallowed)."""
    edit_json(config_dir / "agents.json", lambda d: d["main"].update(main))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_every_mistake_in_main_is_named_in_one_check(config_dir: Path) -> None:
    """An operator who got three fields of main wrong fixes three in one round, not one per
    start (the rest of claude-config is checked whole already)."""
    edit_json(
        config_dir / "agents.json",
        lambda d: d["main"].update(max_turns=0, model=5, permission_mode="yolo", alowed_tools=[]),
    )
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert sorted(p.field or "" for p in caught.value.problems) == [
        "main.alowed_tools",
        "main.max_turns",
        "main.model",
        "main.permission_mode",
    ]


def test_a_mistake_in_mains_fields_and_its_misspelt_tools_are_named_in_one_check(config_dir: Path) -> None:
    """A misspelt tool of main was named only once its fields were right: two rounds of fixes
    (build, doctor or dev's start) for what one check could name."""

    def mistakes(agents: dict[str, Any]) -> None:
        agents["main"].update(max_turns=0, disallowed_tools=3)
        agents["main"]["tools"][0] = "Bassh"
        agents["main"]["allowed_tools"][1] = "Grepp"

    edit_json(config_dir / "agents.json", mistakes)

    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})

    assert sorted((p.field or "", p.reason) for p in caught.value.problems) == [
        ("main.allowed_tools[1]", "unknown tool 'Grepp' (did you mean 'Grep'?)"),
        ("main.disallowed_tools", "must be a list, not a whole number"),
        ("main.max_turns", "must be a whole number of at least 1"),
        ("main.tools[0]", "unknown tool 'Bassh' (did you mean 'Bash'?)"),
    ]


def test_every_mistake_of_a_subagent_is_named_in_one_check(config_dir: Path) -> None:
    """A subagent's misspelt tool and model were named only once its prompt file was right."""

    def mistakes(agents: dict[str, Any]) -> None:
        summarizer = agents["agents"]["summarizer"]
        summarizer.update(description="", prompt_file="agents/missing.md", model="default", colour="red")
        summarizer["tools"][0] = "Reed"

    edit_json(config_dir / "agents.json", mistakes)

    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})

    assert sorted(p.field or "" for p in caught.value.problems) == [
        "agents.summarizer.colour",
        "agents.summarizer.description",
        "agents.summarizer.model",
        "agents.summarizer.prompt_file",
        "agents.summarizer.tools[0]",
    ]


@pytest.mark.parametrize(
    ("file", "change", "field", "reason"),
    [
        (
            "mcp.json",
            lambda d: d.update(mcpservers=d.pop("mcpServers")),
            "mcpservers",
            "unknown field (known: mcpServers)",
        ),
        (
            "agents.json",
            lambda d: d["agents"]["summarizer"].update(promt_file="agents/x.md"),
            "agents.summarizer.promt_file",
            "unknown field (known: description, prompt_file, tools, model)",
        ),
        (
            "mcp.json",
            lambda d: d["mcpServers"]["deepwiki"].update(header={}),
            "mcpServers.deepwiki.header",
            "unknown field (known: type, url, headers, headers_from_ssm, timeout)",
        ),
        (
            "mcp.json",
            lambda d: d["mcpServers"]["agentbot-tools"].update(
                comand=d["mcpServers"]["agentbot-tools"].pop("command")
            ),
            "mcpServers.agentbot-tools.comand",
            "unknown field (known: type, command, args, env, timeout)",
        ),
        (
            "mcp.json",
            lambda d: d["mcpServers"]["deepwiki"].update(uri=d["mcpServers"]["deepwiki"].pop("url")),
            "mcpServers.deepwiki.uri",
            "unknown field (known: type, url, headers, headers_from_ssm, timeout)",
        ),
    ],
    ids=["mcp_top_level", "subagent", "mcp_server", "mcp_command_misspelt", "mcp_url_misspelt"],
)
def test_a_misspelt_field_is_named_in_its_own_file_with_the_known_ones(
    config_dir: Path, file: str, change: Any, field: str, reason: str
) -> None:
    """A misspelt mcpServers used to surface as agents.json naming a server mcp.json lacks; a
    misspelt command or url as "command: is required", pointing at a field the operator wrote."""
    edit_json(config_dir / file, change)
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field, caught.value.reason) == (file, field, reason)


@pytest.mark.parametrize("timeout", [500, 1_800_000, "60000", "1000", 2.5, 1000.5, True, float("nan")])
def test_a_servers_timeout_outside_what_the_cli_and_a_turn_take_is_refused(
    config_dir: Path, timeout: object
) -> None:
    """The CLI ignores less than a second (the server would fall back to MCP_TOOL_TIMEOUT_MS
    without a word), and a turn never runs 30 minutes."""
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["deepwiki"].update(timeout=timeout))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.field == "mcpServers.deepwiki.timeout"
    assert "1000 to 900000" in caught.value.reason and "MCP_TOOL_TIMEOUT_MS" in caught.value.reason


def test_a_servers_timeout_reaches_the_cli_as_written(config_dir: Path) -> None:
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["deepwiki"].update(timeout=300_000))
    config = load_claude_config(config_dir, environ={})
    assert config.mcp_servers["deepwiki"]["timeout"] == 300_000


@pytest.mark.parametrize("written", ["1000.0", "1e3", "3.0e5"])
def test_a_servers_timeout_written_as_a_decimal_number_of_whole_milliseconds_is_taken(
    config_dir: Path, written: str
) -> None:
    """JSON has no integer type, and the CLI reads 1000.0 as 1000: the check refused it as
    "must be a whole number"."""
    mcp = config_dir / "mcp.json"
    edit_json(mcp, lambda d: d["mcpServers"]["deepwiki"].update(timeout="WRITTEN"))
    mcp.write_text(mcp.read_text().replace('"WRITTEN"', written))
    config = load_claude_config(config_dir, environ={})
    timeout = config.mcp_servers["deepwiki"]["timeout"]
    assert timeout == float(written) and type(timeout) is int  # as the CLI takes it


@pytest.mark.parametrize("name", ["deepwiki__docs", "deepwiki_", "a__b__c"])
def test_a_server_name_its_tools_names_would_read_as_another_servers_is_refused(
    config_dir: Path, name: str
) -> None:
    """The CLI names a tool mcp__<server>__<tool> and reads the server up to the first '__':
    mcp__deepwiki__docs__ask was a tool of "deepwiki" and of "deepwiki__docs" alike (as was
    mcp__deepwiki___ask of "deepwiki_"), for the runtime's log and the approval rules too."""
    server = {"type": "http", "url": "https://mcp.example.com/mcp"}
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"].update({name: server}))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field) == ("mcp.json", f"mcpServers.{name}")
    assert "must not contain '__' nor end with '_'" in caught.value.reason
    assert "mcp__<server>__<tool>" in caught.value.reason


def test_a_server_name_with_single_underscores_and_dashes_is_taken(config_dir: Path) -> None:
    server = {"type": "http", "url": "https://mcp.example.com/mcp"}
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"].update({"_my_docs-2": server}))
    assert "_my_docs-2" in load_claude_config(config_dir, environ={}).mcp_servers


def _named(caught: pytest.ExceptionInfo[ClaudeConfigError], config_dir: Path) -> list[tuple[str, str | None]]:
    """(file within claude-config, field) of each problem one load found, in order."""
    return [(str(Path(p.file).relative_to(config_dir)), p.field) for p in caught.value.problems]


def test_one_load_names_every_independent_problem(config_dir: Path) -> None:
    """An operator with several mistakes fixes them in one round, not one per run."""
    (config_dir / "system_prompt.md").write_text("  \n")
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["deepwiki"].update(type="websocket"))
    (config_dir / "skills" / "hello-world" / "SKILL.md").write_text("---\nname: hello-world\n---\nbody\n")

    def three_mistakes(agents: dict[str, Any]) -> None:
        agents["main"]["tools"][1] = "Bash*"
        agents["main"]["disallowed_tools"] = ["Read", "Web*"]
        del agents["agents"]["summarizer"]["description"]

    edit_json(config_dir / "agents.json", three_mistakes)
    rules = [{"tool": "Bash"}, {"tool": "Write", "except": ["x"]}, {"tool": "Edti"}]
    (config_dir / "approvals.json").write_text(json.dumps({"require_approval": rules}))

    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})

    assert _named(caught, config_dir) == [
        ("system_prompt.md", None),
        ("mcp.json", "mcpServers.deepwiki.type"),
        ("skills/hello-world/SKILL.md", "description"),
        ("agents.json", "main.tools[1]"),
        ("agents.json", "main.disallowed_tools[1]"),
        ("agents.json", "agents.summarizer.description"),
        ("approvals.json", "require_approval[1].except"),
        ("approvals.json", "require_approval[2].tool"),
    ]
    message = str(caught.value)  # what a log line or a traceback shows: every one of them
    assert "websocket" in message and "'Edti' matches no built-in tool" in message
    assert "did you mean 'Edit'?" in message and message.count("claude-config error in") == 8


def test_a_file_that_does_not_parse_stops_only_its_own_checks(config_dir: Path) -> None:
    """What names a part of a broken file (a server of mcp.json, a tool agents.json gives) is
    not reported for it: that would repeat the file's problem as many others."""
    (config_dir / "mcp.json").write_text("{not json")
    edit_json(config_dir / "agents.json", lambda d: d["main"]["tools"].__setitem__(1, "Bash*"))
    rules = [{"tool": "mcp__nowhere__*"}, {"tool": "Edti"}]
    (config_dir / "approvals.json").write_text(json.dumps({"require_approval": rules}))

    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})

    assert _named(caught, config_dir) == [
        ("mcp.json", None),
        ("agents.json", "main.tools[1]"),
        ("approvals.json", "require_approval[1].tool"),
    ]

    # agents.json broken: a rule is checked against every built-in tool, not main.tools
    shutil.copy(REPO_CONFIG / "mcp.json", config_dir / "mcp.json")
    (config_dir / "agents.json").write_text('{"main": {"tools": ["Bash",]}}')
    rules = [{"tool": "WebFetch"}, {"tool": "Edti"}]
    (config_dir / "approvals.json").write_text(json.dumps({"require_approval": rules}))

    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})

    assert _named(caught, config_dir) == [
        ("agents.json", None),
        ("approvals.json", "require_approval[1].tool"),
    ]


@pytest.mark.parametrize("servers", [[{"type": "http", "url": "https://x.example/mcp"}], "deepwiki", 3])
def test_mcp_servers_that_is_no_object_is_named_not_a_crash(config_dir: Path, servers: object) -> None:
    """A list of servers (as some MCP clients write it) stops the start with its field, not an
    AttributeError that doctor and dev show as a traceback and the runtime as a failed turn."""
    edit_json(config_dir / "mcp.json", lambda d: d.update(mcpServers=servers))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert [(Path(p.file).name, p.field) for p in caught.value.problems] == [("mcp.json", "mcpServers")]
    assert caught.value.reason == "must be an object of name → server"


def test_many_problems_are_named_up_to_a_limit_and_the_rest_counted(config_dir: Path) -> None:
    """A server renamed in mcp.json that a generated approvals.json names a hundred times: the
    operator reads the first problems and how many more there are, not a hundred lines (the
    runtime logs a line for each, in every new container)."""
    rules = [{"tool": f"mcp__old-name__tool_{n}"} for n in range(100)]
    (config_dir / "approvals.json").write_text(json.dumps({"require_approval": rules}))

    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})

    *named, more = caught.value.problems
    assert [p.field for p in named] == [f"require_approval[{n}].tool" for n in range(20)]
    assert (Path(more.file).name, more.field) == ("approvals.json", "require_approval[20].tool")
    assert more.reason == "and 80 more problem(s) from here on, not shown: fix those above and check again"


def test_a_skills_path_that_is_no_directory_is_named_with_the_other_problems(config_dir: Path) -> None:
    """Not a traceback (doctor, dev) or a failed turn retried until it is dead-lettered (the
    runtime), and not alone: the other files are still checked."""
    shutil.rmtree(config_dir / "skills")
    (config_dir / "skills").write_text("hello-world\n")
    (config_dir / "system_prompt.md").write_text("")

    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})

    assert [(Path(p.file).name, p.field) for p in caught.value.problems] == [
        ("system_prompt.md", None),
        ("skills", None),
    ]
    assert caught.value.problems[1].reason == "must be a directory of <name>/SKILL.md"


def test_a_skills_directory_that_cannot_be_read_is_named(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the kernel answers a directory without read rights (root, as in CI, is never refused).
    listing = Path.iterdir

    def refused(path: Path) -> Any:
        if path == config_dir / "skills":
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(Path, "iterdir", refused)
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field) == ("skills", None)
    assert caught.value.reason.startswith("cannot be read: [Errno 13] Permission denied")


def test_a_server_with_a_mistake_is_still_one_mcp_json_defines(config_dir: Path) -> None:
    """deepwiki's URL is wrong, but deepwiki is defined: a misspelt server another file names
    is named in the same run, not after the URL is fixed."""
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["deepwiki"].update(url="ftp://x"))
    edit_json(config_dir / "agents.json", lambda d: d["main"]["allowed_tools"].append("mcp__deepwkii__ask"))
    (config_dir / "approvals.json").write_text(
        json.dumps({"require_approval": [{"tool": "mcp__deepwiki__*"}]})
    )

    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})

    assert _named(caught, config_dir) == [
        ("mcp.json", "mcpServers.deepwiki.url"),
        ("agents.json", "main.allowed_tools[13]"),
    ]


@pytest.mark.parametrize(
    "server, change, field",
    [
        # docker-compose's way of writing an environment
        ("agentbot-tools", {"env": ["LOG_LEVEL=debug"]}, "mcpServers.agentbot-tools.env"),
        ("agentbot-tools", {"env": {"PATH": 1}}, "mcpServers.agentbot-tools.env.PATH"),
        ("deepwiki", {"headers": "X-Team: ops"}, "mcpServers.deepwiki.headers"),
        ("deepwiki", {"headers": {"X-Retries": 3}}, "mcpServers.deepwiki.headers.X-Retries"),
    ],
)
def test_an_mcp_env_or_headers_that_is_no_object_of_strings_is_named_not_a_crash(
    config_dir: Path, server: str, change: dict[str, Any], field: str
) -> None:
    """Not an AttributeError that doctor and dev show as a traceback (the program check reads
    env.PATH), nor a value handed to the CLI, whose MCP schema takes strings only."""
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"][server].update(change))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={}, programs=ProgramLookup())
    assert (Path(caught.value.file).name, caught.value.field) == ("mcp.json", field)
    assert caught.value.reason.startswith("must be")


@pytest.mark.parametrize(
    "header",
    [
        "Authorization",
        "x-api-key",
        "X-API-Key",
        "X-Auth-Token",
        "Private-Token",
        "CONTEXT7_API_KEY",
        "Api-Key",
    ],
)
def test_a_credential_written_inline_in_mcp_headers_is_refused(config_dir: Path, header: str) -> None:
    """Written in ``headers`` on a server without ``headers_from_ssm``, the token would be baked
    into the image and handed to the CLI, where the agent's tools can read it; so for any header
    named like a secret (GitLab's Private-Token, Context7's CONTEXT7_API_KEY), not two names only."""
    edit_json(
        config_dir / "mcp.json",
        lambda d: d["mcpServers"]["deepwiki"].update(headers={header: "Bearer not-a-real-token"}),
    )
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field) == (
        "mcp.json",
        f"mcpServers.deepwiki.headers.{header}",
    )
    assert "headers_from_ssm" in caught.value.reason
    assert "not-a-real-token" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content", "points_to"),
    [
        (".mcp.json", '{"mcpServers": {}}', "mcp.json"),
        ("settings.json", '{"permissions": {"allow": ["Bash(ls:*)"]}}', "agents.json"),
        ("settings.local.json", "{}", "agents.json"),
        ("CLAUDE.md", "Always answer in French.\n", "system_prompt.md"),
        ("CLAUDE.local.md", "Always answer in French.\n", "system_prompt.md"),
        ("AGENTS.md", "Always answer in French.\n", "system_prompt.md"),
    ],
)
def test_a_file_of_claude_codes_own_layout_is_named_not_ignored(
    config_dir: Path, name: str, content: str, points_to: str
) -> None:
    """An operator who knows Claude Code writes its files here; the runtime reads none of them
    (the CLI gets claude-config through the SDK's options), so the servers, rules or
    instructions in them would be missing from every turn without a word."""
    (config_dir / name).write_text(content)
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field) == (name, None)
    assert caught.value.reason.startswith("is not read") and points_to in caught.value.reason


def test_a_dot_claude_directory_is_named_not_ignored(config_dir: Path) -> None:
    (config_dir / ".claude" / "skills" / "dice").mkdir(parents=True)
    (config_dir / ".claude" / "skills" / "dice" / "SKILL.md").write_text(
        "---\nname: dice\ndescription: x\n---\n"
    )
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field) == (".claude", None)
    assert "skills/<name>/SKILL.md" in caught.value.reason


def test_a_subagent_prompt_in_claude_codes_format_is_named_not_sent_as_prompt(config_dir: Path) -> None:
    """Its front matter's tools and model are not read; the agent would get them as prompt
    text and the tools of agents.json instead."""
    prompt = (config_dir / "agents" / "summarizer.md").read_text()
    front_matter = "---\nname: summarizer\ndescription: Summarizes.\ntools: Read, Grep\nmodel: haiku\n---\n"
    (config_dir / "agents" / "summarizer.md").write_text(front_matter + prompt)
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field) == (
        "agents.json",
        "agents.summarizer.prompt_file",
    )
    assert "front matter" in caught.value.reason and "agents.json" in caught.value.reason


def test_an_empty_subagent_prompt_is_named_as_an_empty_system_prompt_is(config_dir: Path) -> None:
    (config_dir / "agents" / "summarizer.md").write_text(" \n\n")
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field) == (
        "agents.json",
        "agents.summarizer.prompt_file",
    )
    assert "is empty" in caught.value.reason


def test_a_system_prompt_too_long_for_the_clis_command_line_is_named_not_met_at_every_turn(
    config_dir: Path,
) -> None:
    """The CLI gets the prompt (with the runtime's notes on files) as one command-line argument:
    one byte past what Linux lets a program be started with, and every turn failed as the CLI
    started (retried, then dead-lettered) while the start-up check passed."""
    from agent_runtime._file_notes import with_file_notes

    fits = "x" * (MAX_SYSTEM_PROMPT_BYTES - len(with_file_notes("x").encode()) + 1)
    (config_dir / "system_prompt.md").write_text(fits)
    prompt = load_claude_config(config_dir, environ={}).system_prompt
    subprocess.run(["true", with_file_notes(prompt)], check=True)  # the kernel starts it

    (config_dir / "system_prompt.md").write_text(fits + "x")
    with pytest.raises(OSError, match="Argument list too long"):
        subprocess.run(["true", with_file_notes(fits + "x")], check=True)
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field) == ("system_prompt.md", None)
    assert f"is {len(fits) + 1:,} bytes, more than the {len(fits):,}" in caught.value.reason
    assert "skills/<name>/SKILL.md" in caught.value.reason


def test_a_subagent_prompt_no_agent_names_is_named_not_ignored(config_dir: Path) -> None:
    """Claude Code finds a subagent by its file; here agents.json defines it, and a file
    dropped into agents/ alone would never be an agent."""
    (config_dir / "agents" / "translator.md").write_text("You translate.\n")
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field) == ("translator.md", None)
    assert "agents.translator" in caught.value.reason and "prompt_file" in caught.value.reason


def test_the_agents_folders_readme_is_no_stray_prompt(config_dir: Path) -> None:
    (config_dir / "agents" / "README.md").write_text("# Our subagents\nThe summarizer shortens.\n")
    config = load_claude_config(config_dir, environ={})
    assert [agent.name for agent in config.agents] == ["summarizer"]


@pytest.mark.parametrize(
    "text",
    [
        "\ufeff---\nname: hello-world\ndescription: Says hello.\n---\nSay hello.\n",  # Notepad's BOM
        "---\nname: hello-world\ndescription: Says hello.\n---",  # no body, no last newline
        "--- \nname: hello-world\ndescription: Says hello.\n---  \nSay hello.\n",  # trailing spaces
        "---\r\nname: hello-world\r\ndescription: Says hello.\r\n---\r\nSay hello.\r\n",
    ],
)
def test_skill_front_matter_the_cli_reads_is_read_here_too(config_dir: Path, text: str) -> None:
    """The bundled CLI strips a byte-order mark and takes a closing '---' with trailing spaces
    or at the end of the file: such a skill must not be refused as if it had no front matter."""
    (config_dir / "skills" / "hello-world" / "SKILL.md").write_text(text, newline="")
    (skill,) = load_claude_config(config_dir, environ={}).skills
    assert (skill.name, skill.description) == ("hello-world", "Says hello.")


@pytest.mark.parametrize(
    "description",
    [
        "Fill in PDF forms. Use when: the user sends one.",
        "*.csv files: summarise them",
        "@mentions",
        "[draft] Hi.",
    ],
)
def test_skill_front_matter_the_cli_quotes_for_itself_is_read_here_too(
    config_dir: Path, description: str
) -> None:
    """Strict YAML refuses a plain value with ': ' or starting with '*', '@' or '['; the bundled
    CLI then quotes each such 'key: value' line and reads the skill, so it is no mistake here."""
    (config_dir / "skills" / "hello-world" / "SKILL.md").write_text(
        f"---\nname: hello-world\ndescription: {description}\n---\nSay hello.\n"
    )
    (skill,) = load_claude_config(config_dir, environ={}).skills
    assert skill.description == description


def test_skill_front_matter_without_its_closing_line_says_so(config_dir: Path) -> None:
    (config_dir / "skills" / "hello-world" / "SKILL.md").write_text(
        "---\nname: hello-world\ndescription: Says hello.\n\nSay hello.\n"
    )
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.field == "front matter" and "no closing '---' line" in caught.value.reason


@pytest.mark.parametrize(
    ("server", "change", "field"),
    [
        (
            "agentbot-tools",
            {"env": {"WIKI_TOKEN": "${WIKI_TOKEN}"}},
            "mcpServers.agentbot-tools.env.WIKI_TOKEN",
        ),
        (
            "deepwiki",
            {"headers": {"X-Wiki-Key": "${WIKI_API_KEY}"}},
            "mcpServers.deepwiki.headers.X-Wiki-Key",
        ),
        ("deepwiki", {"url": "https://wiki.example/mcp?key=${WIKI_SECRET}"}, "mcpServers.deepwiki.url"),
    ],
)
def test_a_secret_variable_in_mcp_json_is_refused_even_where_the_shell_sets_it(
    config_dir: Path, server: str, change: dict[str, Any], field: str
) -> None:
    """A variable named like a secret never reaches the runtime (agentbot dev strips it from
    the functions' environment, the template sets none): the check at start saw it in the
    shell and passed, and every message was then answered "misconfigured"."""
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"][server].update(change))
    shell = {"WIKI_TOKEN": "t", "WIKI_API_KEY": "k", "WIKI_SECRET": "s"}
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ=shell)
    assert (Path(caught.value.file).name, caught.value.field) == ("mcp.json", field)
    assert "never reaches the runtime" in caught.value.reason and "headers_from_ssm" in caught.value.reason


def test_a_secret_header_named_with_an_underscore_can_come_from_ssm(config_dir: Path) -> None:
    """Context7's MCP server takes its key in ``CONTEXT7_API_KEY``: a valid HTTP header name,
    which headers_from_ssm must take, as it is the only place such a header may be written."""
    edit_json(
        config_dir / "mcp.json",
        lambda d: d["mcpServers"]["deepwiki"].update(
            headers_from_ssm={"CONTEXT7_API_KEY": "/agentbot/mcp/c7"}
        ),
    )
    config = load_claude_config(config_dir, environ={})
    assert config.mcp_secret_headers["deepwiki"] == {"CONTEXT7_API_KEY": "/agentbot/mcp/c7"}


def test_a_secret_written_inline_in_a_command_servers_env_is_refused(config_dir: Path) -> None:
    """GitHub's MCP server is set up with GITHUB_PERSONAL_ACCESS_TOKEN in its env: written in
    mcp.json, the token ships in the image and is on the CLI's command line, which the agent's
    tools can read, though a command server gets no secret (docs/customise.md)."""
    token = "ghp_not0a0real0token0000000000000000000000"
    edit_json(
        config_dir / "mcp.json",
        lambda d: d["mcpServers"]["agentbot-tools"].update(env={"GITHUB_PERSONAL_ACCESS_TOKEN": token}),
    )
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert caught.value.field == "mcpServers.agentbot-tools.env.GITHUB_PERSONAL_ACCESS_TOKEN"
    assert token not in str(caught.value)


def test_a_setting_named_like_a_secret_in_a_command_servers_env_is_no_secret(config_dir: Path) -> None:
    settings = {"TOKENIZERS_PARALLELISM": "false", "MAX_TOKENS": "4096", "SECRET_SCANNING": "off"}
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["agentbot-tools"].update(env=settings))
    assert load_claude_config(config_dir, environ={}).mcp_servers["agentbot-tools"]["env"] == settings


def test_a_server_started_in_claude_config_may_name_its_script_relative_to_it(config_dir: Path) -> None:
    """MCP's own quick start runs a server with `uv --directory <its folder> run server.py`: the
    script is relative to the directory the server is pointed at, not to the chat's, and that
    valid configuration was refused."""
    server = {
        "command": "uv",
        "args": ["--directory", "${CLAUDE_CONFIG_PATH}", "run", "mcp/agentbot_tools.py"],
    }
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["agentbot-tools"].update(server))
    config = load_claude_config(config_dir, environ={"CLAUDE_CONFIG_PATH": str(config_dir)})
    assert config.mcp_servers["agentbot-tools"]["args"][-1] == "mcp/agentbot_tools.py"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"env": {"DATABASE_URL": "postgres://bot:hunter2@db.internal/app"}}, "env.DATABASE_URL"),
        (
            {
                "args": [
                    "-I",
                    "${CLAUDE_CONFIG_PATH:-/var/task/claude-config}/mcp/agentbot_tools.py",
                    "--db",
                    "mysql://bot:hunter2@db/app",
                ]
            },
            "args[3]",
        ),
    ],
)
def test_a_password_in_a_url_a_command_server_gets_is_refused_without_showing_it(
    config_dir: Path, change: dict[str, Any], field: str
) -> None:
    """A command server's environment and command line are readable by the agent's tools: a
    URL with a password in them (a database's, under a name no secret check knows) reaches
    every chat's tools. The start names the field, never the password."""
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["agentbot-tools"].update(change))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    where = (Path(caught.value.file).name, caught.value.field)
    assert where == ("mcp.json", f"mcpServers.agentbot-tools.{field}")
    assert "password" in caught.value.reason and "headers_from_ssm" in caught.value.reason
    assert "hunter2" not in str(caught.value)


# Credentials of each well-known format, made up and built here so that no file holds one whole.
CREDENTIALS = [
    ("a GitHub token", "ghp_" + "a1B2" * 9),
    ("a GitHub token", "github_pat_" + "A1" * 11 + "_" + "b2C3" * 14 + "d4e"),
    ("an Anthropic API key", "sk-ant-api03-" + "x9Y8" * 23 + "AA"),
    ("an OpenAI-style API key", "sk-proj-" + "Ab3d" * 12),
    ("a Slack token", "xoxb-1234567890-1234567890-" + "aB3" * 8),
    # a user's browser token and cookie (as popular Slack MCP servers take them), an app token
    ("a Slack token", "xoxc-1234567890-1234567890123-" + "d4E5f" * 8),
    ("a Slack token", "xoxd-" + "aB3%2F" * 8 + "x%3D"),
    ("a Slack token", "xapp-1-A0123456789-1234567890123-" + "9f8e" * 16),
    ("an AWS access key id", "AKIA" + "Q3ZT" * 4),
    ("a Google API key", "AIza" + "Sy" + "B3x_" * 8 + "k"),
    ("a Stripe key", "sk_live_" + "Zq3" * 8),
    ("a GitLab token", "glpat-" + "x7Y-" * 5),
    ("a JSON Web Token", "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiJib3QifQ" + ".c2lnbmF0dXJlLW5vdC1yZWFs"),
    ("a private key", "-----BEGIN OPENSSH " + "PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END"),
    ("a Telegram bot token", "123456789:AA" + "Fq3_x" * 6 + "z2k"),
    ("a Hugging Face token", "hf_" + "aBcD" * 8 + "eF"),
    ("an npm token", "npm_" + "a1B2" * 9),
]


def _refusal(config_dir: Path, server: str, change: dict[str, Any], environ: dict[str, str]) -> Any:
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"][server].update(change))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ=environ)
    return caught.value


@pytest.mark.parametrize(("kind", "credential"), CREDENTIALS, ids=[kind for kind, _ in CREDENTIALS])
def test_a_credential_under_an_innocent_name_in_a_command_servers_env_is_refused_by_its_format(
    config_dir: Path, kind: str, credential: str
) -> None:
    """Only a name like GITHUB_TOKEN was refused: `"GH": "ghp_…"` shipped in the image and on the
    CLI's command line, where the agent's tools read it. The start names the field and the kind
    of credential, never the value."""
    error = _refusal(config_dir, "agentbot-tools", {"env": {"GH": credential}}, {})
    assert (Path(error.file).name, error.field) == ("mcp.json", "mcpServers.agentbot-tools.env.GH")
    assert error.reason.startswith(f"looks like {kind}, "), error.reason
    assert "headers_from_ssm" in error.reason and "docs/customise.md" in error.reason
    assert credential not in str(error) and credential[-12:] not in str(error)


GITHUB_TOKEN = CREDENTIALS[0][1]


@pytest.mark.parametrize(
    ("server", "change", "environ", "field", "what"),
    [
        (
            "agentbot-tools",
            {"args": ["-I", "${CLAUDE_CONFIG_PATH}/mcp/agentbot_tools.py", "--key", CREDENTIALS[2][1]]},
            {},
            "args[3]",
            "looks like an Anthropic API key, ",
        ),
        (  # the value comes from the operator's environment, not the file
            "agentbot-tools",
            {"env": {"GH": "${GH}"}},
            {"GH": GITHUB_TOKEN},
            "env.GH",
            "looks like a GitHub token (its value comes from ${GH}), ",
        ),
        (  # written as a default the environment overrides: it still ships in the image
            "agentbot-tools",
            {"env": {"GH": "${GH:-" + GITHUB_TOKEN + "}"}},
            {"GH": "none"},
            "env.GH",
            "looks like a GitHub token, ",
        ),
        (
            "deepwiki",
            {"headers": {"X-Team": "Bearer " + GITHUB_TOKEN}},
            {},
            "headers.X-Team",
            "looks like a GitHub token, and written here it ships in the image",
        ),
        ("deepwiki", {"url": "https://wiki.example/mcp?t=" + GITHUB_TOKEN}, {}, "url", "looks like a GitHub"),
        (
            "deepwiki",
            {"url": "https://bot:hunter2@wiki.example/mcp"},
            {},
            "url",
            "holds a URL with a password",
        ),
    ],
)
def test_a_credential_is_refused_in_args_headers_and_urls_and_from_the_environment(
    config_dir: Path, server: str, change: dict[str, Any], environ: dict[str, str], field: str, what: str
) -> None:
    error = _refusal(config_dir, server, change, environ)
    assert error.field == f"mcpServers.{server}.{field}"
    assert error.reason.startswith(what) and "headers_from_ssm" in error.reason, error.reason
    assert not any(credential in str(error) for _, credential in CREDENTIALS) and "hunter2" not in str(error)


def test_a_credential_from_the_environment_names_the_variable_it_came_from(config_dir: Path) -> None:
    url = "https://wiki.example/mcp?api_key=abc123def456"
    error = _refusal(config_dir, "deepwiki", {}, {"DEEPWIKI_MCP_URL": url})
    assert error.field == "mcpServers.deepwiki.url"
    assert "(its value comes from ${DEEPWIKI_MCP_URL})" in error.reason, error.reason
    assert "abc123def456" not in str(error)


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("https://mcp.example.com/mcp?api_key=abc123def456", "api_key"),
        ("https://mcp.example.com/mcp?page=2&apiKey=abc123def456", "apiKey"),
        ("https://mcp.example.com/mcp?access_token=abc123def456", "access_token"),
        ("https://mcp.example.com/mcp?key=abc123def456", "key"),
        ("https://mcp.example.com/mcp?exaApiKey=abc123def456", "exaApiKey"),
        ("https://mcp.example.com/mcp?x-api-key=abc123def456", "x-api-key"),
        ("https://mcp.example.com/mcp?auth=none&password=hunter", "password"),  # a word, not a mode
        ("https://mcp.example.com/mcp?password=public", "password"),  # a mode's word, as a password
    ],
)
def test_an_http_servers_url_with_a_key_in_its_query_is_refused(
    config_dir: Path, url: str, parameter: str
) -> None:
    """The URL is on the CLI's command line and in the image, so a key in its query string is
    as readable by the agent's tools as one in a header written in mcp.json."""
    error = _refusal(config_dir, "deepwiki", {"url": url}, {})
    assert error.field == "mcpServers.deepwiki.url"
    assert f"query parameter {parameter!r} is named like a secret" in error.reason, error.reason
    assert "headers_from_ssm" in error.reason and "abc123def456" not in str(error)


def test_ordinary_settings_are_not_taken_for_credentials(config_dir: Path) -> None:
    env = {
        "RUN_ID": "0b6e3c4e-9f0e-4a8e-8d55-2b1f3c0e6a7d",
        "REVISION": "b912b0b1f0c5a0e5d3f1c2a4b6d8e0f1a3c5e7d9",
        "IMAGE_HASH": "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "DIGEST": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "MODEL": "claude-sonnet-4",
        "PREFIX": "sk",
        "TOKENIZERS_PARALLELISM": "false",
        "HOMEPAGE": "https://example.com/docs?page=2&sort=asc",
        "ENDPOINT": "https://api.example.com/v1?max_tokens=4096&key=",
    }
    server = {
        "command": "uv",
        "args": ["--directory", "${CLAUDE_CONFIG_PATH}", "run", "mcp/agentbot_tools.py", "--model", "gpt-4o"],
        "env": env,
    }
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["agentbot-tools"].update(server))
    # named like secrets, holding a mode: a key is never a short word
    url = (
        "https://mcp.deepwiki.com/mcp?page=2&max_tokens=4096&secret_scanning=off&auth=none&token_type=bearer"
    )
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"]["deepwiki"].update(url=url))
    config = load_claude_config(config_dir, environ={})
    assert config.mcp_servers["agentbot-tools"]["env"] == env
    assert config.mcp_servers["deepwiki"]["url"] == url


def test_two_server_names_differing_only_in_case_are_refused_naming_both(config_dir: Path) -> None:
    """ "GitHub" beside "github" was taken: the CLI finds some tools by their name without its
    case, so the tools of one were taken for the other's."""
    server = {"type": "http", "url": "https://mcp.example.com/mcp"}
    edit_json(config_dir / "mcp.json", lambda d: d["mcpServers"].update({"github": server, "GitHub": server}))
    with pytest.raises(ClaudeConfigError) as caught:
        load_claude_config(config_dir, environ={})
    assert (Path(caught.value.file).name, caught.value.field) == ("mcp.json", "mcpServers.GitHub")
    assert "'github'" in caught.value.reason and "only in case" in caught.value.reason
