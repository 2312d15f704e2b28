"""Which endpoints `--stack` commands count as this machine's (``names_this_machine``)."""

from __future__ import annotations

import threading
import time

import pytest

from agentbot import this_machine
from agentbot.this_machine import names_this_machine


@pytest.mark.parametrize(
    ("addresses", "ours"),
    [
        (["127.0.1.1"], True),  # Debian's /etc/hosts line for the machine's own name
        (["::1", "127.0.0.1"], True),
        (["127.0.0.1", "10.1.2.3"], False),  # reached elsewhere too: not ours to ignore
        (["10.1.2.3"], False),  # a VPC endpoint's
        ([], False),  # no answer: left to boto3, as before
    ],
    ids=["hosts alias", "loopback only", "loopback and elsewhere", "elsewhere", "unresolved"],
)
def test_a_name_counts_as_this_machine_when_it_resolves_to_loopback_only(
    addresses: list[str], ours: bool
) -> None:
    """`AWS_ENDPOINT_URL=http://devbox:4566`, devbox being this machine in /etc/hosts, sent
    `dlq redrive --stack` to the LocalStack on it, as `localhost` no longer did."""
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        return addresses

    assert names_this_machine("http://devbox.:4566", resolve) is ours
    assert asked == ["devbox"]


def test_a_resolver_that_does_not_answer_counts_the_name_as_elsewhere_within_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator command must not hang on a resolver that does not answer."""
    monkeypatch.setattr(this_machine, "RESOLVE_TIMEOUT_S", 0.2)
    released = threading.Event()

    def hanging(host: str) -> list[str]:
        released.wait(10)
        return ["127.0.0.1"]

    started = time.monotonic()
    try:
        assert names_this_machine("http://devbox:4566", hanging) is False
    finally:
        released.set()
    assert time.monotonic() - started < 2


def test_the_system_resolver_answers_with_the_addresses_of_a_name() -> None:
    addresses = this_machine.resolve_host("localhost")
    assert addresses and set(addresses) <= {"127.0.0.1", "::1"}, addresses
