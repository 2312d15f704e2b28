"""The runtime tells the operator what to fix in its log: a line for each problem claude-config's
check found, and the configuration-error metric once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agent_runtime import ClaudeConfigError, ClaudeConfigErrors, load_settings
from agent_runtime._config_report import report_config_error
from session_core import ConfigError, configure_logging


def test_each_claude_config_problem_is_a_log_line_and_the_metric_counts_once(capsys: Any) -> None:
    configure_logging(json_lines=True)
    problems = [
        ClaudeConfigError("/cfg/agents.json", "main.tools[1]", "'Bash*' is a wildcard"),
        ClaudeConfigError("/cfg/approvals.json", "require_approval[2].tool", "'Edti' matches no tool"),
    ]

    report_config_error(ClaudeConfigErrors(problems), tenant="default")

    out, err = capsys.readouterr()
    logged = [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
    fixes = [(line["fix"], line["reason"]) for line in logged if line.get("event") == "config.invalid"]
    assert fixes == [
        ("/cfg/agents.json: main.tools[1]", "'Bash*' is a wildcard"),
        ("/cfg/approvals.json: require_approval[2].tool", "'Edti' matches no tool"),
    ]
    assert [line.get("ConfigurationErrors") for line in logged if "_aws" in line] == [1]


def test_a_model_silence_longer_than_any_turn_is_reported_naming_the_setting(capsys: Any) -> None:
    """A MODEL_SILENCE_S the proxy cannot wait (a socket timeout past what the OS takes) failed
    every model call of every turn instead of the container's start."""
    configure_logging(json_lines=True)
    environ = {
        "SESSIONS_TABLE": "t",
        "SESSIONS_BUCKET": "b",
        "ANTHROPIC_API_KEY_PARAMETER": "/agentbot/key",
        "MODEL_SILENCE_S": "99999999999",
    }

    with pytest.raises(ConfigError) as refused:
        load_settings(environ)
    report_config_error(refused.value, tenant="default")

    out, err = capsys.readouterr()
    logged = [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
    fixes = [(line["fix"], line["reason"]) for line in logged if line.get("event") == "config.invalid"]
    assert fixes == [("MODEL_SILENCE_S", "must be <= 899, got 99999999999")]
    longest = {**environ, "MODEL_SILENCE_S": "899", "MODEL_TIMEOUT_MS": "900000"}
    assert load_settings(longest).model_silence_s == 899


def test_a_model_silence_as_long_as_the_longest_model_timeout_is_refused_with_a_bound_it_can_meet() -> None:
    """MODEL_SILENCE_S=900 was documented as allowed, and MODEL_TIMEOUT_MS=901000 with it; with
    the timeout now at most 900000 ms, 900 s was told to be shorter than MODEL_TIMEOUT_MS,
    whose own bound then refused raising it: the operator went round in a circle."""
    environ = {"SESSIONS_TABLE": "t", "SESSIONS_BUCKET": "b", "ANTHROPIC_API_KEY_PARAMETER": "/agentbot/key"}

    with pytest.raises(ConfigError) as refused:
        load_settings({**environ, "MODEL_SILENCE_S": "900", "MODEL_TIMEOUT_MS": "900000"})

    assert (refused.value.setting, refused.value.reason) == ("MODEL_SILENCE_S", "must be <= 899, got 900")


@pytest.mark.parametrize(
    ("setting", "longest", "refused"),
    [
        (
            "MODEL_TIMEOUT_MS",
            "900000",
            "900001 ms must be at most 900000 ms (900 s, the longest a turn runs on Lambda): "
            "a longer limit on a model call is never reached",
        ),
        (
            "LEASE_DURATION_S",
            "900",
            "901 s must be at most 900 s (the longest a turn runs on Lambda): a turn that crashes "
            "holds its chat until its lease ends, longer than any turn could have run",
        ),
    ],
)
def test_a_limit_no_turn_could_reach_is_reported_naming_the_setting_and_what_it_must_be_below(
    capsys: Any, setting: str, longest: str, refused: str
) -> None:
    """MODEL_TIMEOUT_MS=3600000 started, and the turn's own end cut every call that long; a
    LEASE_DURATION_S of an hour started too, and a crashed turn's chat then waited an hour."""
    configure_logging(json_lines=True)
    environ = {"SESSIONS_TABLE": "t", "SESSIONS_BUCKET": "b", "ANTHROPIC_API_KEY_PARAMETER": "/agentbot/key"}
    beyond = str(int(longest) + 1)

    with pytest.raises(ConfigError) as too_long:
        load_settings({**environ, setting: beyond})
    report_config_error(too_long.value, tenant="default")

    out, err = capsys.readouterr()
    logged = [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]
    fixes = [(line["fix"], line["reason"]) for line in logged if line.get("event") == "config.invalid"]
    assert fixes == [(setting, refused)]
    taken = load_settings({**environ, setting: longest})
    assert str(int(getattr(taken, setting.lower()))) == longest  # the longest that can work is taken
