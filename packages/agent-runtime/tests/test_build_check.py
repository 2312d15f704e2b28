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


def build_check(config: Path, build_stage: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's step: only the image's own variables set (no shell, no AWS), with
    ``build_stage``'s too (what the build stage's ENV, ARGs or base image give it)."""
    env = {
        "CLAUDE_CONFIG_PATH": str(config),
        "HOME": "/tmp",
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        **(build_stage or {}),
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


def serve_at(url: str):
    def change(mcp: dict) -> None:
        mcp["mcpServers"]["gateway"] = {"type": "http", "url": url}

    return change


def test_the_shipped_config_passes(config_dir: Path) -> None:
    done = build_check(config_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "claude-config ok: 1 subagent(s), 1 skill(s), 2 MCP server(s)\n"


def test_each_mistake_fails_the_build_naming_the_file_and_field(config_dir: Path) -> None:
    def misspell_a_tool_and_a_field(agents: dict) -> None:
        agents["main"]["tools"][1] = "Bassh"
        agents["main"]["max_turns"] = 0  # named with the tool, not in a second build

    def add_a_server_without_its_program(mcp: dict) -> None:
        mcp["mcpServers"]["search"] = {"type": "stdio", "command": "no-such-search-server"}

    edit_json(config_dir / "agents.json", misspell_a_tool_and_a_field)
    edit_json(config_dir / "mcp.json", add_a_server_without_its_program)
    (config_dir / "skills" / "hello-world" / "SKILL.md").write_text("---\nname: hello-world\n---\nHi.\n")
    done = build_check(config_dir)
    assert done.returncode == 1, done.stdout
    lines = done.stderr.splitlines()
    assert lines[0] == "claude-config has mistakes, so the runtime image is not built:"
    problems = sorted(line.strip() for line in lines[1:-1])
    assert [p.split(": ", 2)[:2] for p in problems] == [
        ["claude-config/agents.json", "main.max_turns"],
        ["claude-config/agents.json", "main.tools[1]"],
        ["claude-config/mcp.json", "mcpServers.search.command"],
        ["claude-config/skills/hello-world/SKILL.md", "description"],
    ]
    assert "did you mean 'Bash'" in problems[1]
    assert "not on the runtime's PATH" in problems[2]
    assert "agentbot doctor" in lines[-1]


@pytest.mark.parametrize("refused", ["default", "Default", "", "  ", "claude sonnet 4.5"])
def test_a_subagent_model_no_model_answers_to_fails_the_build_listing_what_it_may_be(
    config_dir: Path, refused: str
) -> None:
    """The CLI sends a subagent's "default" (or any name it does not resolve) to the model as it
    is: no model has that name, so every call of the subagent failed ("Agent terminated early
    due to an API error") in every turn that used it, while the image built and deployed."""
    edit_json(config_dir / "agents.json", lambda agents: agents["agents"]["summarizer"].update(model=refused))

    done = build_check(config_dir)

    assert done.returncode == 1, done.stdout
    problem = done.stderr.splitlines()[1].strip()
    assert problem.startswith("claude-config/agents.json: agents.summarizer.model: "), done.stderr
    for accepted in ("sonnet", "opus", "haiku", "inherit", "[1m]", "a model id"):
        assert accepted in problem, problem


@pytest.mark.parametrize(
    "accepted",
    [
        "inherit",
        "INHERIT",
        "Sonnet",
        "haiku",
        "opus[1m]",
        "fable",
        "best",
        "opusplan",
        " sonnet ",
        "claude-haiku-4-5-20251001",
        "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
        "default-model-v2",
    ],
)
def test_a_subagent_model_the_cli_resolves_or_sends_as_an_id_passes(config_dir: Path, accepted: str) -> None:
    edit_json(
        config_dir / "agents.json", lambda agents: agents["agents"]["summarizer"].update(model=accepted)
    )

    done = build_check(config_dir)

    assert done.returncode == 0, done.stderr


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
    for url in ("${ANTHROPIC_BASE_URL}", "${ANTHROPIC_BASE_URL}/mcp"):
        edit_json(config_dir / "mcp.json", serve_at(url))
        done = build_check(config_dir)
        assert done.returncode == 0, (url, done.stderr)
    for url in ("${ANTHROPIC_BASE_URL} /mcp", "mcp.example.com/${TENANT}"):
        edit_json(config_dir / "mcp.json", serve_at(url))
        done = build_check(config_dir)
        assert done.returncode == 1, (url, done.stdout)
        assert "claude-config/mcp.json: mcpServers.gateway.url: must be an http(s) URL" in done.stderr, url


@pytest.mark.parametrize("url", ["${TENANT}", "${TENANT}/mcp", "${AWS_REGION}/mcp"])
def test_a_url_of_a_deployed_variable_that_never_holds_a_url_fails_the_build(
    config_dir: Path, url: str
) -> None:
    """A tenant or a region is never a URL: the build passed these and every cold start failed."""
    edit_json(config_dir / "mcp.json", serve_at(url))
    done = build_check(config_dir)
    assert done.returncode == 1, (url, done.stdout)
    (line,) = [line.strip() for line in done.stderr.splitlines() if "mcpServers.gateway" in line]
    variable = url.split("}")[0] + "}"
    assert line.startswith(
        "claude-config/mcp.json: mcpServers.gateway.url: must be an http(s) URL with a host, such as "
        f"https://mcp.example.com/mcp (its value comes from {variable}); at deploy {variable} is "
    ), line
    assert ("the stack's Tenant parameter, such as 'default'" if "TENANT" in url else "Lambda") in line


@pytest.mark.parametrize(
    ("variable", "held"),
    [
        (
            "CLAUDE_CODE_USE_BEDROCK",
            "1 when the stack's ModelBackend parameter is bedrock, else 0, such as '0'",
        ),
        (
            "MODEL_INVOKE_ROLE_ARN",
            "the ARN of the role the stack makes when its ModelBackend parameter is bedrock, such as 'arn:",
        ),
    ],
)
def test_a_url_of_a_variable_the_template_derives_names_what_it_holds(
    config_dir: Path, variable: str, held: str
) -> None:
    """Made from the ModelBackend parameter, neither variable is that parameter: the refusal said
    "${CLAUDE_CODE_USE_BEDROCK} is the stack's ModelBackend parameter, such as '0'"."""
    edit_json(config_dir / "mcp.json", serve_at(f"${{{variable}}}/mcp"))
    done = build_check(config_dir)
    assert done.returncode == 1, done.stdout
    (line,) = [line.strip() for line in done.stderr.splitlines() if "mcpServers.gateway" in line]
    assert f"; at deploy ${{{variable}}} is {held}" in line, line


@pytest.mark.parametrize(
    "url",
    [
        "https://mcp.example.com:${SESSION_DISK_LIMIT_MB}/mcp",
        "https://${TENANT}.mcp.example.com/mcp",
        "http://[::1]:${LEASE_DURATION_S}/${TENANT}/mcp",
    ],
)
def test_a_url_valid_once_its_deployed_variables_are_in_passes_the_build(config_dir: Path, url: str) -> None:
    """A port from a variable failed: the build put a word where the number goes."""
    edit_json(config_dir / "mcp.json", serve_at(url))
    done = build_check(config_dir)
    assert done.returncode == 0, (url, done.stderr)
    assert done.stderr == ""


def test_a_url_of_a_variable_a_stack_may_deploy_empty_passes_with_a_warning(config_dir: Path) -> None:
    """ANTHROPIC_BASE_URL is empty unless the stack sets AnthropicBaseUrl, which the build
    cannot know: it passed without a word, and such a stack failed every cold start."""
    edit_json(config_dir / "mcp.json", serve_at("${ANTHROPIC_BASE_URL}/mcp"))
    done = build_check(config_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("claude-config ok:")
    assert done.stderr.splitlines() == [
        "warning: claude-config/mcp.json: mcpServers.gateway.url: ${ANTHROPIC_BASE_URL} is empty and has "
        "no default when the stack's AnthropicBaseUrl is left empty (its default), and every cold start "
        "then fails: deploy with it set, or write a default that works without it "
        "(${ANTHROPIC_BASE_URL:-...}); `agentbot doctor --stack NAME` checks a deployed stack's values"
    ]
    edit_json(config_dir / "mcp.json", serve_at("${ANTHROPIC_BASE_URL:-https://mcp.example.com}/mcp"))
    done = build_check(config_dir)
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SEARCH_MCP_URL", "https://search.example.com/mcp"),  # an ARG of the build
        ("UV_LINK_MODE", "copy"),  # the build stage's own ENV (the Dockerfile's workspace stage)
    ],
)
def test_a_variable_only_the_build_stage_has_fails_the_build(
    config_dir: Path, variable: str, value: str
) -> None:
    """The check runs in a build stage whose ENV, ARGs and base image are not the shipped
    image's, and the function gets only the image's ENV, the template's and Lambda's: a url of
    ``${SEARCH_MCP_URL}`` passed the build and failed every cold start."""
    edit_json(config_dir / "mcp.json", serve_at(f"${{{variable}}}"))

    done = build_check(config_dir, build_stage={variable: value})

    assert done.returncode == 1, done.stdout
    assert f"claude-config/mcp.json: mcpServers.gateway.url: ${{{variable}}} is not set" in done.stderr


def test_a_variable_the_image_sets_passes_though_the_build_stage_has_another_value(config_dir: Path) -> None:
    """The image's ENV (packages/agent-runtime/Dockerfile's final stage) is the deployed
    runtime's, whatever the build stage holds under the same name."""
    edit_json(config_dir / "mcp.json", serve_at("https://mcp.example.com${HOME}/mcp"))

    assert build_check(config_dir, build_stage={"HOME": "/root"}).returncode == 0
    done = build_check(config_dir, build_stage={"HOME": "not a path"})
    assert done.returncode == 0, done.stderr


def test_aws_execution_env_fails_without_a_default(config_dir: Path) -> None:
    """AWS documents AWS_EXECUTION_ENV as a managed runtime's id (AWS_Lambda_python3.13) and
    not defined for OS-only runtimes; it names no value for a container image like this one, so
    the runtime may not have it."""

    def pass_execution_env(default: str):
        def change(mcp: dict) -> None:
            mcp["mcpServers"]["agentbot-tools"]["env"] = {"EXECUTION_ENV": f"${{AWS_EXECUTION_ENV{default}}}"}

        return change

    edit_json(config_dir / "mcp.json", pass_execution_env(""))
    done = build_check(config_dir, build_stage={"AWS_EXECUTION_ENV": "AWS_Lambda_Image"})
    assert done.returncode == 1, done.stdout
    field = "mcpServers.agentbot-tools.env.EXECUTION_ENV"
    assert f"claude-config/mcp.json: {field}: ${{AWS_EXECUTION_ENV}} is not set" in done.stderr
    edit_json(config_dir / "mcp.json", pass_execution_env(":-image"))
    assert build_check(config_dir).returncode == 0


def test_the_images_locale_passes_as_a_container_of_it_has_one(config_dir: Path) -> None:
    """Every container of the image starts with LANG=C.UTF-8 (its base image sets it, CI's
    base too), and a command server may be handed it: the check refused ``${LANG}`` as
    "not set" once it stopped reading the build stage's environment, where it was."""
    edit_json(
        config_dir / "mcp.json",
        lambda mcp: mcp["mcpServers"]["agentbot-tools"].update(env={"LC_ALL": "${LANG}"}),
    )

    done = build_check(config_dir, build_stage={"LANG": "C.UTF-8"})

    assert done.returncode == 0, done.stderr
