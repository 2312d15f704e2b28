"""The runtime tells the operator what to fix in its log: a line for each problem claude-config's
check found, and the configuration-error metric once."""

from __future__ import annotations

import json
from typing import Any

from agent_runtime import ClaudeConfigError, ClaudeConfigErrors
from agent_runtime._config_report import report_config_error
from session_core import configure_logging


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
