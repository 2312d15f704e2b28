"""`agentbot dev` reads why an attempt failed from the functions' log as it grows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentbot.dev_failures import FailureReasons

REPO_CONFIG = Path(__file__).resolve().parents[1] / "claude-config"


def test_reasons_come_from_the_consumers_lines_for_that_update_and_odd_lines_are_skipped(
    tmp_path: Path,
) -> None:
    log = tmp_path / "functions.log"
    log.write_text(
        json.dumps({"event": "record_failed", "update_id": 1, "error": "from an earlier run"}) + "\n"
    )
    reasons = FailureReasons(log)  # a reused state directory: the earlier run's lines are not read
    lines = [
        '["record_retry", 7]',  # JSON, but no object
        "Traceback (most recent call last): record_",
        json.dumps({"event": "record_done", "update_id": 7}),
        json.dumps({"event": "record_retry", "update_id": 7, "error_kind": "delivery", "error": "502"}),
    ]
    with log.open("a") as out:
        out.write("\n".join(lines) + "\n")
        out.write(json.dumps({"event": "record_failed", "update_id": 8, "error_kind": "model_error"}))

    assert reasons.take(1) is None
    assert reasons.take(7) == "delivery: 502"
    assert reasons.take(7) is None  # taken
    assert reasons.take(8) is None  # its line is not whole yet
    with log.open("a") as out:
        out.write("\n")
    assert reasons.take(8) == "model_error"


def test_a_configuration_problem_a_turn_met_is_shown_once_per_run(tmp_path: Path) -> None:
    """The runtime logs it every turn; the terminal says it once, with what to check."""
    log = tmp_path / "functions.log"
    log.write_text("")
    reasons = FailureReasons(log)
    server = {
        "event": "turn.mcp_server_unavailable",
        "server": "deepwiki",
        "status": "failed",
        "fix": "claude-config/mcp.json: mcpServers.deepwiki",
    }
    tool = {
        "event": "turn.tool_unavailable",
        "tool": "WebSearch",
        "fix": "claude-config/agents.json: main.tools[8]",
    }
    with log.open("a") as out:
        out.write("".join(json.dumps(entry) + "\n" for entry in (server, tool, server)))
    assert reasons.take_warnings() == [
        "MCP server 'deepwiki' failed: the agent ran without its tools (is it reachable from here? "
        "see claude-config/mcp.json: mcpServers.deepwiki)",
        "the CLI left out tool 'WebSearch': the agent ran without it "
        "(check claude-config/agents.json: main.tools[8])",
    ]
    with log.open("a") as out:  # the next turns log the same again
        out.write(json.dumps(server) + "\n" + json.dumps(tool) + "\n")
    assert reasons.take_warnings() == []


def test_what_the_log_says_reaches_the_terminal_without_control_characters(tmp_path: Path) -> None:
    log = tmp_path / "functions.log"
    log.write_text("")
    reasons = FailureReasons(log)
    forged = "x\x1b]0;owned\x07\ry"  # a terminal title, then a carriage return
    entry = {"event": "record_failed", "update_id": 3, "error_kind": "delivery", "error": forged}
    log.write_text(json.dumps(entry) + "\n")
    assert reasons.take(3) == "delivery: x\\x1b]0;owned\\x07\\ry"


def test_a_configuration_error_a_turn_met_says_what_to_fix_once(tmp_path: Path) -> None:
    """The chat only reads "the bot is misconfigured; the operator has been told": in dev the
    operator is at this terminal, and is told here what the runtime's log says to fix (a model
    key it refuses, which dev's start does not try), by the variable the operator set: the
    runtime names the SSM parameter dev put the key in."""
    log = tmp_path / "functions.log"
    log.write_text("")
    reasons = FailureReasons(log)
    refused = {
        "event": "config.invalid",
        "fix": "/agentbot-dev/anthropic-api-key (ANTHROPIC_API_KEY_PARAMETER)",
        "reason": "the model answered 401: the key or role is refused",
        "error": "ModelBackendError",
    }
    with log.open("a") as out:
        out.write(json.dumps(refused) + "\n" + json.dumps(refused) + "\n")
    assert reasons.take_warnings() == [
        "configuration error, every message is answered 'misconfigured': "
        "ANTHROPIC_API_KEY: the model answered 401: the key or "
        "role is refused (`agentbot doctor` checks it; fix it and start `agentbot dev` again)"
    ]


def test_a_refused_key_or_token_is_told_with_dev_s_fix_not_the_deployed_bots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the runtime and the consumer really log when the model refuses the key or Telegram
    the token: the terminal said "put a new key in the parameter: running containers use it …",
    a parameter of dev's embedded AWS that the operator cannot reach; in dev the key and token
    come from the shell, and a new one takes a restart."""
    from agent_runtime import load_claude_config, load_settings
    from agent_runtime._config_report import report_config_error
    from agent_runtime._model_refusal import operator_refusal
    from session_core import configure_logging
    from sqs_consumer._config_report import report_bot_token_refused

    configure_logging(json_lines=True)
    settings = load_settings(
        {
            "SESSIONS_TABLE": "agentbot-dev-sessions",
            "SESSIONS_BUCKET": "agentbot-dev-sessions",
            "ANTHROPIC_API_KEY_PARAMETER": "/agentbot-dev/anthropic-api-key",
        }
    )
    refusal = operator_refusal(401, "authentication_failed", settings, load_claude_config(REPO_CONFIG))
    assert refusal is not None
    report_config_error(refusal, tenant="default")
    report_bot_token_refused("/agentbot-dev/telegram-bot-token", tenant="default")
    out, err = capsys.readouterr()
    log = tmp_path / "functions.log"
    log.write_text("")
    reasons = FailureReasons(log)
    log.write_text("".join(line + "\n" for line in (out + err).splitlines() if line.startswith("{")))

    key, token = reasons.take_warnings()

    assert "ANTHROPIC_API_KEY: the model answered 401: the key or role is refused (" in key, key
    assert "TELEGRAM_BOT_TOKEN: Telegram refuses the bot token" in token, token
    for warning in (key, token):
        assert "parameter" not in warning, warning
        assert warning.endswith("fix it and start `agentbot dev` again)"), warning


def test_a_consumer_setting_is_named_by_the_variable_the_operator_set(tmp_path: Path) -> None:
    """The consumer logs the bare setting (``fix=BOT_TOKEN_PARAMETER``), not the runtime's
    "<parameter> (SETTING)": the terminal still names what the operator set, TELEGRAM_BOT_TOKEN."""
    log = tmp_path / "functions.log"
    log.write_text("")
    reasons = FailureReasons(log)
    missing = {"event": "config.invalid", "fix": "BOT_TOKEN_PARAMETER", "reason": "parameter not found"}
    with log.open("a") as out:
        out.write(json.dumps(missing) + "\n")
    (warning,) = reasons.take_warnings()
    assert "TELEGRAM_BOT_TOKEN: parameter not found" in warning, warning
