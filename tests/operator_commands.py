"""Running an operator command (`agentbot doctor|dlq|webhook|chat`) against the tests' moto."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from local_stack import LOCAL_CREDENTIALS

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
    """`agentbot ARGV`. A command naming a stack reaches it in AWS itself when the shell names
    endpoints on this machine: here it is handed the clients of one that does read them (the
    fixtures' moto). Without a stack, the command as the operator runs it."""
    args = build_parser().parse_args(argv)
    if not named_stack(args):
        return main(argv)
    run = _RUN[args.command]
    return guarded(lambda args: run(args, clients=aws_clients(args)))(args)


def reach_the_fixtures_through_a_profile(aws: Any, monkeypatch: pytest.MonkeyPatch, directory: Path) -> str:
    """An operator whose way to AWS is their profile's endpoint_url (a VPC endpoint, where AWS's
    public ones are blocked; here the fixtures' moto), with no endpoint in the shell: the name
    of that profile, in an AWS_CONFIG_FILE of its own in ``directory``."""
    endpoints = aws.endpoints.environment()
    for variable in endpoints:
        monkeypatch.delenv(variable)
    services = "".join(
        f"{variable.removeprefix('AWS_ENDPOINT_URL_').lower()} =\n  endpoint_url = {url}\n"
        for variable, url in endpoints.items()
        if variable != "AWS_ENDPOINT_URL"
    )
    config = directory / "operator-aws-config"
    config.write_text(
        f"[profile operator]\nregion = {LOCAL_CREDENTIALS['AWS_DEFAULT_REGION']}\n"
        f"aws_access_key_id = {LOCAL_CREDENTIALS['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {LOCAL_CREDENTIALS['AWS_SECRET_ACCESS_KEY']}\n"
        f"endpoint_url = {endpoints['AWS_ENDPOINT_URL']}\n"
        + (f"services = operator-endpoints\n\n[services operator-endpoints]\n{services}" if services else "")
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    return "operator"
