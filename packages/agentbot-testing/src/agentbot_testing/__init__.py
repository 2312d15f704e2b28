"""What tests of every package share: the `aws` pytest plugin (loaded through the `pytest11`
entry point) and real network seams — a fault-injecting AWS proxy and an HTTP MCP server.

Nothing here patches boto3; each helper is a server on 127.0.0.1 that tests point clients
at. The Telegram path (`agentbot_testing.telegram_stack`, `telegram_support`,
`telegram_stub_runtime`) needs the producer and consumer: install the `telegram` extra.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._claude_config import REPO_CLAUDE_CONFIG, claude_config_without_approvals
    from ._documents import noise_pdf
    from ._fake_clock import CLOCK_START, FakeClock
    from ._fault_proxy import AwsFault, FaultProxy
    from ._kept_between_runs import kept_dir
    from ._mcp_http import LOOKUP_ANSWER, HttpMcpServer
    from ._new_container_ssm import json_log_lines, new_container_ssm
    from ._older_consumer import older_consumer_settling_before_each_catch_up
    from ._photos import noise_png
    from ._tool_scripts import FIND_CLI, KILL_CLI
    from ._ttl_sweep import sweep_expired_items
else:  # imported on first use (a function worker running the stub needs none of these)
    from session_core import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, __file__)
    del TYPE_CHECKING, lazy_exports  # not exports

__all__ = [
    "CLOCK_START",
    "FIND_CLI",
    "KILL_CLI",
    "LOOKUP_ANSWER",
    "REPO_CLAUDE_CONFIG",
    "AwsFault",
    "FakeClock",
    "FaultProxy",
    "HttpMcpServer",
    "claude_config_without_approvals",
    "json_log_lines",
    "kept_dir",
    "new_container_ssm",
    "noise_pdf",
    "noise_png",
    "older_consumer_settling_before_each_catch_up",
    "sweep_expired_items",
]
