"""`agentbot chat KEY`: one chat's state in the registry of a deployed stack (see chat_state)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, Any

from session_core import InvalidSessionKeyError, SessionKey

from .budget_settings import budget_caps
from .chat_state import format_chat_state, read_chat_state
from .ops import (
    ClientFactory,
    OpsError,
    common_options,
    guarded,
    operator_aws_clients,
    resolve_setting,
    stack_of,
)

_OUTPUT_TABLE = "SessionsTableName"


def run_chat(
    args: argparse.Namespace, *, clients: ClientFactory | None = None, out: IO[str] | None = None
) -> int:
    """`agentbot chat KEY`."""
    out = out or sys.stdout
    try:
        key = SessionKey.parse(args.key)
    except InvalidSessionKeyError as exc:
        raise OpsError(
            f"{args.key!r} is no session key ({exc}): tenant/chat_id/thread_id, as logged"
        ) from None
    clients = clients or operator_aws_clients(args)
    stack = stack_of(args, clients)
    table = resolve_setting(args.table, "SESSIONS_TABLE", stack, _OUTPUT_TABLE, "--table")
    caps = budget_caps(stack.parameters if stack else None, os.environ)
    state = read_chat_state(key, dynamodb=clients("dynamodb"), table=table, caps=caps, turns=args.turns)
    print(format_chat_state(state), file=out)
    return 0


def register(subparsers: Any) -> None:
    """Add the `chat` command."""
    chat = subparsers.add_parser(
        "chat",
        parents=[common_options()],
        help="show one chat's state: session, running turn, answers saved last, approval, budget",
        description="Show what the registry knows about one chat: its conversation, whether a turn "
        "runs now, the answers saved last (when, outcome, cost, chunks delivered), a pending "
        "approval, its budget this period. Never what anyone wrote.",
    )
    chat.add_argument(
        "key", metavar="KEY", help="the chat's session key, tenant/chat_id/thread_id (as logged)"
    )
    chat.add_argument("--table", help="the sessions table (or SESSIONS_TABLE)")
    chat.add_argument("--turns", type=int, default=10, help="how many saved answers to show (default 10)")
    chat.set_defaults(handler=guarded(run_chat))
