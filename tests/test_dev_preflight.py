"""`agentbot dev` runs the runtime's own start-up check before any function starts: a broken
claude-config or unusable model settings stop the start with one line naming the file and
field, or the setting, and what to do (exit 2), instead of failing the first message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO_CONFIG = Path(__file__).resolve().parents[1] / "claude-config"


def _start(
    extra_env: dict[str, str], state_dir: Path | None = None, cwd: Path | None = None, said: str = "hello\n"
) -> subprocess.CompletedProcess[str]:
    """`agentbot dev` told ``said`` (started in ``cwd``); with ``state_dir`` its functions' log
    outlives it."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "ANTHROPIC_", "CLAUDE_", "TELEGRAM_"))
    }
    kept = ["--state-dir", str(state_dir)] if state_dir is not None else []
    return subprocess.run(
        [sys.executable, "-m", "agentbot.cli", "dev", *kept],
        input=said,
        capture_output=True,
        text=True,
        env={**env, **extra_env},
        cwd=cwd,
        timeout=180,
        check=False,
    )


def _copy_config(tmp_path: Path) -> Path:
    config = tmp_path / "claude-config"
    shutil.copytree(REPO_CONFIG, config)
    return config


def _edit_json(path: Path, change: Callable[[dict[str, Any]], object]) -> None:
    """Apply ``change`` to the JSON object in ``path`` and write it back."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _name_a_tool_of_an_undefined_server(agents: dict[str, Any]) -> None:
    agents["agents"]["summarizer"]["tools"] = ["mcp__nowhere__search"]


def _misspell_a_subagent_tool(agents: dict[str, Any]) -> None:
    agents["agents"]["summarizer"]["tools"] = ["Reed"]


def _misspell_a_main_agent_tool(agents: dict[str, Any]) -> None:
    agents["main"]["tools"][0] = "Bassh"


def _make_a_program_missing(mcp: dict[str, Any]) -> None:
    mcp["mcpServers"]["github"] = {"command": "npx-not-installed", "args": ["-y", "server-github"]}


def _give_a_server_a_token_under_an_innocent_name(mcp: dict[str, Any]) -> None:
    token = "ghp_" + "d3v0" * 9  # made up, and built here so that no file holds one whole
    mcp["mcpServers"]["agentbot-tools"]["env"] = {"GH": token}


def _one_failure_line(done: subprocess.CompletedProcess[str]) -> str:
    said = done.stdout + done.stderr
    assert done.returncode == 2, said[-3000:]
    assert "Traceback" not in said and "bot> " not in done.stdout
    failure = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert len(failure) == 1, done.stderr[-2000:]
    return failure[0]


@pytest.mark.parametrize(
    ("breakage", "names", "fix"),
    [
        ("agents.json is not JSON", "agents.json", "invalid JSON at line 1"),
        ("a subagent names an undefined MCP server", "agents.json: agents.summarizer.tools[0]", "mcp.json"),
        ("a subagent names a misspelt tool", "agents.summarizer.tools[0]: unknown tool 'Reed'", "'Read'?"),
        ("the main agent names a misspelt tool", "main.tools[0]: unknown tool 'Bassh'", "'Bash'?"),
        ("a skill without description", "SKILL.md: description", "is required"),
        ("a command MCP server whose program is missing", "mcp.json: mcpServers.github.command", "npx"),
        (
            "a token under an innocent name",
            "mcp.json: mcpServers.agentbot-tools.env.GH",
            "looks like a GitHub token",
        ),
    ],
)
def test_a_broken_claude_config_stops_the_start_naming_file_and_field(
    breakage: str, names: str, fix: str, tmp_path: Path
) -> None:
    config = _copy_config(tmp_path)
    if breakage == "agents.json is not JSON":
        (config / "agents.json").write_text('{"main": {"tools": ["Bash",]}}')
    elif breakage == "a subagent names an undefined MCP server":
        _edit_json(config / "agents.json", _name_a_tool_of_an_undefined_server)
    elif breakage == "a subagent names a misspelt tool":
        _edit_json(config / "agents.json", _misspell_a_subagent_tool)
    elif breakage == "the main agent names a misspelt tool":
        _edit_json(config / "agents.json", _misspell_a_main_agent_tool)
    elif breakage == "a command MCP server whose program is missing":
        _edit_json(config / "mcp.json", _make_a_program_missing)
    elif breakage == "a token under an innocent name":
        _edit_json(config / "mcp.json", _give_a_server_a_token_under_an_innocent_name)
    else:
        (config / "skills" / "hello-world" / "SKILL.md").write_text("---\nname: hello-world\n---\nHi.\n")

    line = _one_failure_line(_start({"CLAUDE_CONFIG_PATH": str(config)}))

    assert names in line and fix in line, line
    assert "start `agentbot dev` again" in line
    assert "d3v0" * 9 not in line


def _refused_start(done: subprocess.CompletedProcess[str], problems: int) -> list[str]:
    """The lines of a start refused for ``problems`` problems, from the one that says so."""
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    refusal = done.stderr[done.stderr.index("cannot start") :].splitlines()
    assert refusal[0].endswith(f"cannot start: {problems} problems:"), refusal
    return refusal


def test_every_claude_config_problem_is_named_in_one_refusal(tmp_path: Path) -> None:
    """Two mistakes: both named at the first start, the fix they share said once."""
    config = _copy_config(tmp_path)
    _edit_json(config / "agents.json", _name_a_tool_of_an_undefined_server)
    (config / "skills" / "hello-world" / "SKILL.md").write_text("---\nname: hello-world\n---\nHi.\n")

    refusal = _refused_start(_start({"CLAUDE_CONFIG_PATH": str(config)}), problems=2)
    assert "SKILL.md: description: is required" in refusal[1], refusal
    assert "agents.json: agents.summarizer.tools[0]: 'mcp__nowhere__search'" in refusal[2], refusal
    assert "start `agentbot dev` again" in refusal[3], refusal


def test_a_wrong_field_of_main_and_its_misspelt_tool_are_named_in_one_refusal(tmp_path: Path) -> None:
    """The misspelt tool was named only at the start after the field was fixed."""
    config = _copy_config(tmp_path)
    _edit_json(config / "agents.json", _misspell_a_main_agent_tool)
    _edit_json(config / "agents.json", lambda agents: agents["main"].update(max_turns=0))

    refusal = _refused_start(_start({"CLAUDE_CONFIG_PATH": str(config)}), problems=2)
    assert "agents.json: main.tools[0]: unknown tool 'Bassh'" in refusal[1], refusal
    assert "agents.json: main.max_turns: must be a whole number of at least 1" in refusal[2], refusal


def test_a_missing_program_is_named_with_the_files_problems_in_one_refusal(tmp_path: Path) -> None:
    """Not one round of fixes for the files and then another for the program."""
    config = _copy_config(tmp_path)
    _edit_json(config / "agents.json", _name_a_tool_of_an_undefined_server)
    _edit_json(config / "mcp.json", _make_a_program_missing)

    done = _start({"CLAUDE_CONFIG_PATH": str(config)})
    refusal = _refused_start(done, problems=2)
    assert "mcp.json: mcpServers.github.command: program 'npx-not-installed'" in refusal[1], refusal
    assert "agents.json: agents.summarizer.tools[0]: 'mcp__nowhere__search'" in refusal[2], refusal
    assert "AWS" not in done.stderr  # refused before anything started


def test_bad_limits_budgets_and_allow_lists_in_the_shell_stop_the_start_each_named() -> None:
    """The producer's and consumer's settings: else every message fails, the reason only in
    functions.log (a temporary directory, gone at exit)."""
    done = _start({"ALLOWED_CHAT_IDS": "123;456", "BUDGET_USER_DAILY_USD": "five", "CHAT_QUEUE_LIMIT": "ten"})

    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "bot> " not in done.stdout
    refusal = done.stderr[done.stderr.index("cannot start") :].splitlines()
    assert refusal[0].endswith("cannot start: 3 problems:"), refusal
    assert any(line.startswith("  ALLOWED_CHAT_IDS: '123;456' is not an integer id") for line in refusal)
    assert "  CHAT_QUEUE_LIMIT: must be an integer, got 'ten'" in refusal, refusal  # named once
    assert any(line.startswith("  BUDGET_USER_DAILY_USD: must be an amount in USD") for line in refusal)
    assert "fix or unset it in your shell" in refusal[4], refusal


def test_a_claude_config_path_that_is_no_directory_says_what_to_point_it_at(tmp_path: Path) -> None:
    line = _one_failure_line(_start({"CLAUDE_CONFIG_PATH": str(tmp_path / "nope")}))

    assert f"{tmp_path / 'nope'}: directory does not exist" in line, line
    assert "point CLAUDE_CONFIG_PATH at a claude-config directory" in line and "fix the file" not in line


def test_a_key_for_a_model_api_that_cannot_be_reached_stops_the_start() -> None:
    """Else each message fails on every receive before it ends in "the model did not answer"."""
    line = _one_failure_line(
        _start({"ANTHROPIC_API_KEY": "sk-ant-x", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"})
    )

    assert "cannot reach the model's API at http://127.0.0.1:9 (ConnectError)" in line, line
    assert "unset ANTHROPIC_API_KEY to use the offline demo model" in line


def test_a_key_the_model_refuses_stops_the_start_saying_to_export_a_new_one() -> None:
    """dev's start reached the API and went on; the first message was answered "the bot is
    misconfigured" and the terminal told of the key only then. dev now asks what doctor asks."""
    from local_stack import ModelServer, echo_responder

    revoked = "sk-ant-revoked-DEV-0123456789"
    with ModelServer(echo_responder) as model:
        model.accepted_key = "sk-ant-the-current-key"
        done = _start({"ANTHROPIC_API_KEY": revoked, "ANTHROPIC_BASE_URL": model.base_url})
        asked = len(model.model_calls)
    line = _one_failure_line(done)

    assert f"cannot start: ANTHROPIC_API_KEY: the model's API at {model.base_url} answered 401" in line, line
    assert "export ANTHROPIC_API_KEY=<a key from console.anthropic.com> and start `agentbot dev`" in line
    assert revoked not in done.stdout + done.stderr
    assert asked == 1  # one 1-token request, then nothing started
    assert "AWS" not in done.stderr


def test_a_model_api_slow_to_answer_the_key_check_does_not_stop_the_start() -> None:
    """A slow answer is no refused key: the start goes on, and the turns have their own patience."""
    from local_stack import ModelFault, ModelServer, echo_responder

    from agentbot.dev import DevSetupError, _check_model_api

    with ModelServer(echo_responder) as model:
        model.inject(ModelFault(silent_s=12))  # past the check's 10 s
        _check_model_api(model.base_url, "sk-ant-any", "claude-sonnet-4-5")
        model.accepted_key = "sk-ant-the-current-key"
        with pytest.raises(DevSetupError, match="answered 401: the key is refused"):
            _check_model_api(model.base_url, "sk-ant-revoked", "claude-sonnet-4-5")


def test_a_key_from_a_env_file_with_crlf_line_ends_is_used_without_its_carriage_return() -> None:
    """`set -a; . ./.env` of a file saved with CRLF gives "key\r" (and "\r" for an empty one):
    the first took 2.7 minutes of retries to end in "the model did not answer (it may be busy)",
    the second asked Anthropic's API for a turn instead of using the offline demo model."""
    from local_stack import ModelServer, echo_responder

    with ModelServer(echo_responder) as model:
        done = _start({"ANTHROPIC_API_KEY": "sk-ant-crlf-test\r", "ANTHROPIC_BASE_URL": model.base_url})
        keys = {call.headers.get("x-api-key") for call in model.model_calls}
    assert done.returncode == 0 and "bot> " in done.stdout, done.stderr[-3000:]
    assert keys == {"sk-ant-crlf-test"}, keys

    done = _start({"ANTHROPIC_API_KEY": "\r", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"})
    assert done.returncode == 0 and "[offline demo model" in done.stdout, done.stderr[-3000:]


def test_a_model_base_url_without_its_scheme_is_named_not_called_unreachable() -> None:
    """It said "cannot reach the model's API at :///… (UnsupportedProtocol): check the network"."""
    line = _one_failure_line(_start({"ANTHROPIC_API_KEY": "sk-ant-x", "ANTHROPIC_BASE_URL": "127.0.0.1:9"}))

    assert "cannot start: ANTHROPIC_BASE_URL: must be an http(s) URL such as https://" in line, line
    assert "network" not in line


def test_a_env_file_filled_in_but_not_loaded_is_pointed_out_in_the_banner(tmp_path: Path) -> None:
    """dev reads the environment only (the README loads .env into the shell): a key written
    into .env and never loaded gave the offline demo model without a word."""
    (tmp_path / ".env").write_text(
        "# copied from .env.example\nTELEGRAM_BOT_TOKEN=\nANTHROPIC_API_KEY='sk-ant-in-the-file'\n"
        "CLAUDE_CODE_USE_BEDROCK=0\n"  # chooses nothing: not named
    )
    done = _start({}, cwd=tmp_path)

    assert done.returncode == 0 and "[offline demo model" in done.stdout, done.stderr[-3000:]
    (note,) = [line for line in done.stderr.splitlines() if "NOTE" in line]
    assert "./.env sets ANTHROPIC_API_KEY, which this shell does not have" in note, note
    assert "set -a; . ./.env; set +a" in note and "TELEGRAM_BOT_TOKEN" not in note and "BEDROCK" not in note
    assert "sk-ant-in-the-file" not in done.stdout + done.stderr


def test_budgets_without_a_per_turn_cap_are_warned_of_in_the_banner() -> None:
    """`agentbot doctor`'s warning, at dev's start too: a daily cap without MAX_TURN_COST_USD
    holds nothing while turns run, so it is passed without bound. dev still starts."""
    done = _start({"BUDGET_USER_DAILY_USD": "1"}, said="")

    assert done.returncode == 0, done.stderr[-3000:]
    (warning,) = [line for line in done.stderr.splitlines() if "WARNING" in line and "BUDGET" in line]
    assert "MAX_TURN_COST_USD: not set while BUDGET_USER_DAILY_USD cap" in warning, warning
    assert "export MAX_TURN_COST_USD=" in warning, warning

    bounded = _start({"BUDGET_USER_DAILY_USD": "1", "MAX_TURN_COST_USD": "0.5"}, said="")
    assert bounded.returncode == 0, bounded.stderr[-3000:]
    assert "MAX_TURN_COST_USD" not in bounded.stderr


def test_bedrock_turned_on_as_the_runtime_reads_it_is_the_model_the_banner_names() -> None:
    """The runtime takes CLAUDE_CODE_USE_BEDROCK=on (or yes): the banner said "offline demo model"
    while the runtime it started used Bedrock."""
    bedrock = {
        "CLAUDE_CODE_USE_BEDROCK": "on",
        "AWS_REGION": "eu-central-1",
        "AWS_ACCESS_KEY_ID": "AKIDBEDROCKTEST",
        "AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
    }
    done = _start(bedrock, said="")  # no message: nothing is sent to Bedrock

    assert done.returncode == 0, done.stderr[-3000:]
    assert "  model     Bedrock (eu-central-1)" in done.stderr, done.stderr[-3000:]
    assert "offline demo model" not in done.stderr


def test_bedrock_without_a_region_stops_the_start_naming_aws_region(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("[default]\n")  # a profile without a region
    line = _one_failure_line(
        _start(
            {
                "CLAUDE_CODE_USE_BEDROCK": "1",
                "AWS_CONFIG_FILE": str(tmp_path / "config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
            }
        )
    )
    assert "AWS_REGION" in line and "export AWS_REGION=" in line, line


def test_bedrock_without_credentials_stops_the_start_saying_the_fix_once(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("[default]\nregion = eu-west-1\n")  # a region, no keys
    line = _one_failure_line(
        _start(
            {
                "CLAUDE_CODE_USE_BEDROCK": "1",
                "AWS_CONFIG_FILE": str(tmp_path / "config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
            }
        )
    )
    assert "CLAUDE_CODE_USE_BEDROCK" in line and "no AWS credentials" in line, line
    # one remedy, not the runtime's and dev's both, and not a role dev refuses
    assert line.count("AWS_PROFILE") == 1 and "MODEL_INVOKE_ROLE_ARN" not in line, line


# Bedrock as the developer's shell gives it to dev: region, own credentials and a model, with
# the model's endpoint on 127.0.0.1 for the start's check (boto3) and the runtime (the CLI).
SHELL_KEY_ID = "AKIDSHELLDEVTEST0001"
BEDROCK_MODEL = "anthropic.claude-test-v1:0"


def _bedrock_shell(model_url: str) -> dict[str, str]:
    return {
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": SHELL_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": "not-a-real-secret-shell",
        "BEDROCK_MODEL_ID": BEDROCK_MODEL,
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": model_url,
        "ANTHROPIC_BEDROCK_BASE_URL": model_url,
    }


def test_bedrock_calls_are_signed_with_the_developers_own_credentials() -> None:
    """dev's runtime signed Bedrock with the credentials dev makes for its local AWS, which
    real Bedrock never accepts: every turn was answered "misconfigured", naming the AWS
    credentials that doctor had just checked fine. A busy answer to the start's check (it
    is the first call) starts dev as before."""
    from local_stack import ModelFault, ModelServer, echo_responder

    with ModelServer(echo_responder) as model:
        model.only_models([BEDROCK_MODEL])
        model.inject(ModelFault(status=429, message="Too many requests, please wait before trying again."))
        done = _start(_bedrock_shell(model.base_url))
        calls = model.model_calls

    assert done.returncode == 0 and "bot> echo: hello" in done.stdout, (done.stdout + done.stderr)[-3000:]
    signers = {call.headers.get("Authorization", "").split("Credential=")[1].split("/")[0] for call in calls}
    assert signers == {SHELL_KEY_ID}, signers
    assert "not-a-real-secret-shell" not in done.stdout + done.stderr


def _gateway_shell(tmp_path: Path, gateway_url: str) -> dict[str, str]:
    """Bedrock through a gateway that authenticates callers itself: no AWS credentials at all."""
    (tmp_path / "config").write_text("[default]\n")
    return {
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "AWS_REGION": "eu-west-1",
        "BEDROCK_MODEL_ID": BEDROCK_MODEL,
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "ANTHROPIC_BEDROCK_BASE_URL": gateway_url,
    }


def test_bedrock_gateway_url_without_its_scheme_stops_the_start_without_showing_it(tmp_path: Path) -> None:
    """A gateway that authenticates by itself needs no AWS credentials, and the start's Bedrock
    check once skipped it: a URL the model proxy cannot use (no scheme) started dev anyway, and
    the first turn failed with the whole URL in its error, the token in its path included."""
    shell = _gateway_shell(tmp_path, "gateway.example.com/t-secret-in-the-path")
    state = tmp_path / "state"
    done = _start(shell, state_dir=state)
    logged = "".join(p.read_text(errors="replace") for p in state.rglob("*.log"))

    line = _one_failure_line(done)
    assert "ANTHROPIC_BEDROCK_BASE_URL" in line and "http(s) URL" in line, line
    assert "t-secret-in-the-path" not in done.stdout + done.stderr + logged


def test_bedrock_turns_are_called_in_the_region_the_start_checked(tmp_path: Path) -> None:
    """The region in the AWS config (`aws configure`), no AWS_REGION: doctor and dev's start
    asked Bedrock there and passed, while the runtime called the local stack's us-east-1, where
    the model may not be enabled (every turn "misconfigured" after a start that said all was well)."""
    from local_stack import ModelServer, echo_responder

    (tmp_path / "config").write_text("[default]\nregion = eu-west-1\n")
    with ModelServer(echo_responder) as model:
        shell = _bedrock_shell(model.base_url) | {"AWS_CONFIG_FILE": str(tmp_path / "config")}
        del shell["AWS_REGION"]
        done = _start(shell)
        regions = {
            call.headers.get("Authorization", "").split("Credential=")[1].split("/")[2]
            for call in model.model_calls
        }

    assert _replies_of(done) == ["echo: hello"], (done.stdout + done.stderr)[-3000:]
    assert regions == {"eu-west-1"}, regions
    assert "  model     Bedrock (eu-west-1)" in done.stderr, done.stderr[-3000:]


@pytest.mark.skipif(os.geteuid() != 0, reason="only as root does the agent run as another user")
def test_bedrock_credentials_of_a_profile_only_the_developer_can_read_answer_turns(tmp_path: Path) -> None:
    """The fix dev and doctor give for refused credentials is AWS_PROFILE. Started as root,
    dev runs the runtime as the agent's user, who cannot read the developer's ~/.aws: the
    shell's AWS_PROFILE reached the runtime, whose every boto3 client then failed with
    ProfileNotFound, and each message ended in "Sorry" after minutes of retries."""
    from local_stack import ModelServer, echo_responder

    private = tmp_path / "dot-aws"
    private.mkdir(mode=0o700)  # as ~/.aws of root is to the agent's user
    (private / "credentials").write_text(
        f"[bedrock]\naws_access_key_id = {SHELL_KEY_ID}\naws_secret_access_key = not-a-real-secret-shell\n"
    )
    (private / "config").write_text("[profile bedrock]\nregion = eu-west-1\n")
    with ModelServer(echo_responder) as model:
        shell = _bedrock_shell(model.base_url)
        del shell["AWS_ACCESS_KEY_ID"], shell["AWS_SECRET_ACCESS_KEY"]
        shell |= {
            "AWS_PROFILE": "bedrock",
            "AWS_CONFIG_FILE": str(private / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(private / "credentials"),
        }
        done = _start(shell)
        signers = {
            call.headers.get("Authorization", "").split("Credential=")[1].split("/")[0]
            for call in model.model_calls
        }

    assert _replies_of(done) == ["echo: hello"], (done.stdout + done.stderr)[-3000:]
    assert signers == {SHELL_KEY_ID}, signers


def test_bedrock_with_a_model_invoke_role_stops_the_start_saying_to_unset_it() -> None:
    """A MODEL_INVOKE_ROLE_ARN exported for a deploy reached dev's runtime, whose start-up
    check then said "is set but no STS client was given", which nobody can act on. dev signs
    Bedrock with the developer's own credentials and assumes no role: it says so, at once."""
    from local_stack import ModelServer, echo_responder

    role = "arn:aws:iam::123456789012:role/agentbot-model-invoke"
    with ModelServer(echo_responder) as model:
        done = _start(_bedrock_shell(model.base_url) | {"MODEL_INVOKE_ROLE_ARN": role})
        asked = len(model.model_calls)
    line = _one_failure_line(done)

    assert "unset MODEL_INVOKE_ROLE_ARN" in line and "your own credentials" in line, line
    assert "STS client" not in line and asked == 0


def _replies_of(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.removeprefix("bot> ") for line in done.stdout.splitlines() if line.startswith("bot> ")]


@pytest.mark.parametrize(
    ("refusal", "names"),
    [
        (  # the account has not enabled the model, or the id is mistyped
            {"status": 400, "message": "The provided model identifier is invalid."},
            (
                f"(ANTHROPIC_BEDROCK_BASE_URL) refused a 1-token request to {BEDROCK_MODEL} "
                "(ValidationException)",
                "check the model id (BEDROCK_MODEL_ID)",
            ),
        ),
        (  # credentials Bedrock does not know (mistyped, deleted, of another partition)
            {
                "status": 403,
                "bedrock_error": "UnrecognizedClientException",
                "message": "The security token included in the request is invalid.",
            },
            (
                "(ANTHROPIC_BEDROCK_BASE_URL) refused the AWS credentials (UnrecognizedClientException)",
                "AWS_PROFILE",
            ),
        ),
    ],
    ids=["model not enabled", "credentials refused"],
)
def test_bedrock_refusing_the_model_or_the_credentials_stops_the_start(
    refusal: dict[str, Any], names: tuple[str, str]
) -> None:
    """With the Anthropic API dev asks for one token at start and stops on a refused key; with
    Bedrock it started and every message was answered "the bot is misconfigured". It now asks
    what doctor asks and says what to fix."""
    from local_stack import ModelFault, ModelServer, echo_responder

    with ModelServer(echo_responder) as model:
        model.inject(ModelFault(**refusal), times=5)
        done = _start(_bedrock_shell(model.base_url))
        asked = len(model.model_calls)
    line = _one_failure_line(done)

    said, fix = names
    assert said in line and fix in line.split(said)[1], line
    assert asked == 1  # the start's one request, and no turn
    assert "not-a-real-secret-shell" not in done.stdout + done.stderr


def test_with_a_bedrock_gateway_the_start_asks_the_gateway_its_turns_call() -> None:
    """dev's runtime calls ANTHROPIC_BEDROCK_BASE_URL; its start asked bedrock-runtime (here
    one that has not enabled the model) and stopped a start whose every turn answers."""
    from local_stack import ModelFault, ModelServer, echo_responder

    with ModelServer(echo_responder) as bedrock_runtime, ModelServer(echo_responder) as gateway:
        bedrock_runtime.only_models(
            [], refusal=ModelFault(status=400, message="The provided model identifier is invalid.")
        )
        done = _start(
            _bedrock_shell(gateway.base_url) | {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock_runtime.base_url}
        )
        asked_bedrock_runtime = len(bedrock_runtime.model_calls)

    assert done.returncode == 0 and "bot> echo: hello" in done.stdout, (done.stdout + done.stderr)[-3000:]
    assert asked_bedrock_runtime == 0


def test_a_gateway_without_aws_credentials_refusing_the_model_stops_the_start(tmp_path: Path) -> None:
    """Without AWS credentials dev's start never asked the gateway (doctor does): it started,
    and every message was answered "the bot is misconfigured"."""
    from local_stack import ModelFault, ModelServer, echo_responder

    with ModelServer(echo_responder) as gateway:
        gateway.only_models(
            ["anthropic.other-v1:0"],
            refusal=ModelFault(status=400, message="The provided model identifier is invalid."),
        )
        done = _start(_gateway_shell(tmp_path, gateway.base_url))
        asked = len(gateway.model_calls)
    line = _one_failure_line(done)

    refused = (
        f"Bedrock gateway at {gateway.base_url} (ANTHROPIC_BEDROCK_BASE_URL) refused a 1-token request "
        f"to {BEDROCK_MODEL} (ValidationException)"
    )
    assert refused in line and "check the model id (BEDROCK_MODEL_ID)" in line, line
    assert asked == 1  # the start's one request, and no turn
    assert "no AWS credentials" not in line, line


def test_a_gateway_without_aws_credentials_that_cannot_be_reached_stops_the_start(tmp_path: Path) -> None:
    line = _one_failure_line(_start(_gateway_shell(tmp_path, "http://127.0.0.1:9")))

    assert "cannot reach Bedrock gateway at http://127.0.0.1:9 (ANTHROPIC_BEDROCK_BASE_URL)" in line, line
    assert "check the network, or ANTHROPIC_BEDROCK_BASE_URL" in line, line


def test_an_mcp_secret_header_comes_from_its_variable_or_the_start_says_which(agent_tmp_path: Path) -> None:
    config = _copy_config(agent_tmp_path)  # the agent reads it while it runs (see agent_tmp_path)
    mcp = json.loads((config / "mcp.json").read_text())
    mcp["mcpServers"]["vault"] = {
        "type": "http",
        "url": "http://127.0.0.1:9/mcp",
        "headers_from_ssm": {"Authorization": "/agentbot/mcp/vault-token"},
    }
    (config / "mcp.json").write_text(json.dumps(mcp))

    line = _one_failure_line(_start({"CLAUDE_CONFIG_PATH": str(config)}))
    assert "mcp.json: mcpServers.vault.headers_from_ssm.Authorization" in line, line
    assert "/agentbot/mcp/vault-token" in line and "export MCP_SECRET_VAULT_AUTHORIZATION=" in line

    secret = "Bearer dev-vault-secret-0123456789"
    state = agent_tmp_path / "state"
    done = _start({"CLAUDE_CONFIG_PATH": str(config), "MCP_SECRET_VAULT_AUTHORIZATION": secret}, state)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    # the turn ran (the runtime, as the unprivileged user, read the config), not an apology
    log = (state / "functions.log").read_text()[-6000:]
    assert "bot> [offline demo model, costs $0] I received: 'hello'" in done.stdout, (done.stdout, log)
    assert "replied after" in done.stderr and secret not in done.stdout + done.stderr


def test_a_malformed_secret_header_is_named_as_a_mistake_in_the_file_not_a_missing_secret(
    tmp_path: Path,
) -> None:
    config = _copy_config(tmp_path)
    mcp = json.loads((config / "mcp.json").read_text())
    mcp["mcpServers"]["vault"] = {
        "type": "http",
        "url": "http://127.0.0.1:9/mcp",
        "headers_from_ssm": {"bad header": "/agentbot/mcp/vault-token"},
    }
    (config / "mcp.json").write_text(json.dumps(mcp))

    line = _one_failure_line(_start({"CLAUDE_CONFIG_PATH": str(config)}))
    assert "headers_from_ssm.bad header: is not an HTTP header name" in line, line
    assert "fix the file" in line and "export MCP_SECRET" not in line, line


@pytest.mark.skipif(os.geteuid() != 0, reason="only as root does the agent run as another user")
def test_a_config_the_agent_user_cannot_read_stops_the_start_naming_the_file(agent_tmp_path: Path) -> None:
    config = _copy_config(agent_tmp_path)  # the agent reads it while it runs (see agent_tmp_path)
    private = config / "skills" / "hello-world" / "SKILL.md"
    private.chmod(0o600)  # root's own file: the agent (nobody) could not read it
    line = _one_failure_line(_start({"CLAUDE_CONFIG_PATH": str(config)}))
    # The file first (not CLAUDE_CONFIG_PATH, a setting the developer may never have set).
    assert f"cannot start: {private}: the agent runs as 'nobody' and cannot read it" in line, line
    assert f"chmod o+r {private}" in line and "CLAUDE_CONFIG_PATH" not in line
    private.chmod(0o644)
    done = _start({"CLAUDE_CONFIG_PATH": str(config)})  # (under a 0700 temp dir, as tmp_path)
    assert "I received: 'hello'" in done.stdout, (done.stdout + done.stderr)[-3000:]
