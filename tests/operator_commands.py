"""Running an operator command (`agentbot doctor|dlq|webhook|chat`) against the tests' moto."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agentbot.chat import run_chat
from agentbot.cli import build_parser, main
from agentbot.doctor import run_doctor
from agentbot.ops import aws_clients, guarded, named_stack, run_dlq, run_webhook

_RUN: dict[str, Callable[..., int]] = {
    "doctor": run_doctor,
    "dlq": run_dlq,
    "webhook": run_webhook,
    "chat": run_chat,
}


def run_at_the_shells_endpoints(argv: Sequence[str]) -> int:
    """`agentbot ARGV`. A command naming a stack reaches it in AWS itself, whatever endpoints
    the shell names: here it is handed the clients of one that does read them (the fixtures'
    moto). Without a stack, the command as the operator runs it."""
    args = build_parser().parse_args(argv)
    if not named_stack(args):
        return main(argv)
    run = _RUN[args.command]
    return guarded(lambda args: run(args, clients=aws_clients(args)))(args)
