"""A secret a warm container uses follows its SSM parameter after it is refused, but reads the
parameter again at most once per interval: a value that is simply bad (revoked, no new one yet)
must not turn every refused call into an SSM request."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from agentbot_testing import FakeClock, FaultProxy
from session_core import SECRET_REREAD_INTERVAL_S as REREAD_INTERVAL_S
from session_core import ConfigError, RotatingSecret, configure_logging


def put(ssm: Any, name: str, value: str) -> None:
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


def test_a_refused_key_is_read_again_at_most_once_per_interval(aws: Any) -> None:
    ssm = aws.client("ssm")
    name = f"/agentbot-test/{uuid.uuid4().hex}/anthropic-key"
    put(ssm, name, "sk-ant-first")
    clock = FakeClock()
    key = RotatingSecret(ssm, name, clock=clock)
    assert key.current() == "sk-ant-first"

    clock.now += REREAD_INTERVAL_S  # warm: read an interval ago
    put(ssm, name, "sk-ant-second")  # the operator rotates it
    assert key.renew("sk-ant-first") is True
    assert key.current() == "sk-ant-second"

    # Another call refused with the first key while the second was read: sent again with the
    # second, and SSM is not asked (the third value is not picked up).
    put(ssm, name, "sk-ant-third")
    assert key.renew("sk-ant-first") is True
    assert key.current() == "sk-ant-second"

    # The second is refused too, too soon after the last read: kept, refused calls pass back.
    clock.now += REREAD_INTERVAL_S - 1
    assert key.renew("sk-ant-second") is False
    assert key.current() == "sk-ant-second"

    clock.now += 1
    assert key.renew("sk-ant-second") is True
    assert key.current() == "sk-ant-third"


def test_a_value_just_read_from_ssm_is_not_read_again_when_refused_within_the_interval(aws: Any) -> None:
    """A cold container's first refused value (a forged webhook call's secret) costs one SSM
    read, not two: the value first read is as fresh as a re-read would be."""
    name = f"/agentbot-test/{uuid.uuid4().hex}/webhook-secret"
    put(aws.client("ssm"), name, "a-long-enough-secret-1")
    clock = FakeClock()
    with FaultProxy(aws.endpoint, services=aws.endpoints.services) as counted:
        secret = RotatingSecret(counted.client("ssm"), name, clock=clock, first_read_counts=True)
        assert secret.current() == "a-long-enough-secret-1"
        clock.now += REREAD_INTERVAL_S - 1
        assert secret.renew("a-long-enough-secret-1") is False
        assert counted.seen.count("ssm:GetParameter") == 1

        clock.now += 1
        assert secret.renew("a-long-enough-secret-1") is False
        assert counted.seen.count("ssm:GetParameter") == 2


def test_a_token_rotated_just_after_a_cold_start_is_taken_at_its_first_refusal(aws: Any) -> None:
    """Only the operator's rotation makes a token wrong: a container that read the old one a
    second before takes the new one at its first refusal, instead of failing every message
    (and raising the configuration alarm) for up to the interval."""
    ssm = aws.client("ssm")
    name = f"/agentbot-test/{uuid.uuid4().hex}/bot-token"
    put(ssm, name, "111:old-token")
    clock = FakeClock()
    token = RotatingSecret(ssm, name, clock=clock)
    assert token.current() == "111:old-token"
    put(ssm, name, "111:new-token")
    clock.now += 1

    assert token.renew("111:old-token") is True
    assert token.current() == "111:new-token"


def test_a_reread_that_finds_the_same_key_or_no_parameter_keeps_the_key_and_logs_no_value(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json_lines=True, level="DEBUG")
    ssm = aws.client("ssm")
    name = f"/agentbot-test/{uuid.uuid4().hex}/anthropic-key"
    put(ssm, name, "sk-ant-only-one")
    clock = FakeClock()
    key = RotatingSecret(ssm, name, clock=clock)
    key.current()

    assert key.renew("sk-ant-only-one") is False  # nothing rotated: the refusal stands
    ssm.delete_parameter(Name=name)
    clock.now += REREAD_INTERVAL_S
    assert key.renew("sk-ant-only-one") is False
    assert key.current() == "sk-ant-only-one"

    logged = capsys.readouterr()
    assert "secret.reread_failed" in logged.err and name in logged.err
    assert "sk-ant-only-one" not in logged.out + logged.err


def must_be_long(value: str) -> str:
    if len(value) < 16:
        raise ConfigError("WEBHOOK_SECRET_PARAMETER", "the secret must be 16 characters or more")
    return value


def test_a_reread_value_the_check_refuses_is_not_used(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json_lines=True, level="DEBUG")
    ssm = aws.client("ssm")
    name = f"/agentbot-test/{uuid.uuid4().hex}/webhook-secret"
    put(ssm, name, "a-long-enough-secret-1")
    clock = FakeClock()
    secret = RotatingSecret(ssm, name, check=must_be_long, clock=clock)
    assert secret.current() == "a-long-enough-secret-1"

    clock.now += REREAD_INTERVAL_S
    put(ssm, name, "short")
    assert secret.renew("a-long-enough-secret-1") is False
    assert secret.current() == "a-long-enough-secret-1"
    logged = capsys.readouterr().err
    assert "secret.reread_failed" in logged and "16 characters" in logged and "short" not in logged
