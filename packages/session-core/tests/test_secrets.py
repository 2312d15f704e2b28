"""Secrets come from SSM SecureStrings, once per process, and never show up in errors or logs."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import boto3
import pytest
from botocore.config import Config
from session_core import ConfigError, StorageError, configure_logging, read_secret

FAKE_TOKEN = "123456:not-a-real-token-" + "x" * 20


def parameter_name() -> str:
    return f"/agentbot-test/{uuid.uuid4().hex}/bot-token"


def test_a_secure_string_is_decrypted_and_read_once(aws: Any) -> None:
    ssm = aws.client("ssm")
    name = parameter_name()
    ssm.put_parameter(Name=name, Value=FAKE_TOKEN, Type="SecureString")

    assert read_secret(ssm, name) == FAKE_TOKEN
    # Cached per process: a warm container does not ask SSM again, even if it went away.
    ssm.delete_parameter(Name=name)
    assert read_secret(ssm, name) == FAKE_TOKEN


def test_a_fresh_read_gets_a_rotated_value_and_later_reads_keep_it(aws: Any) -> None:
    ssm = aws.client("ssm")
    name = parameter_name()
    ssm.put_parameter(Name=name, Value=FAKE_TOKEN, Type="SecureString")
    assert read_secret(ssm, name) == FAKE_TOKEN

    ssm.put_parameter(Name=name, Value=FAKE_TOKEN + "-rotated", Type="SecureString", Overwrite=True)
    assert read_secret(ssm, name) == FAKE_TOKEN  # cached
    assert read_secret(ssm, name, fresh=True) == FAKE_TOKEN + "-rotated"
    ssm.delete_parameter(Name=name)
    assert read_secret(ssm, name) == FAKE_TOKEN + "-rotated"


def test_a_value_put_from_a_file_is_read_without_its_closing_newline(aws: Any) -> None:
    """`aws ssm put-parameter --value file://token.txt` keeps the file's newline: a bot token or
    model key with it fails every request it is sent in, each failure saying something else."""
    ssm = aws.client("ssm")
    name = parameter_name()
    ssm.put_parameter(Name=name, Value=f"{FAKE_TOKEN}\n", Type="SecureString")

    assert read_secret(ssm, name) == FAKE_TOKEN


def test_a_missing_parameter_is_a_config_error_naming_it(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json_lines=True, level="DEBUG")
    ssm = aws.client("ssm")
    name = parameter_name()
    with pytest.raises(ConfigError) as info:
        read_secret(ssm, name)
    assert info.value.setting == name
    assert name in str(info.value)

    # Once created, it is found (a miss is not cached).
    ssm.put_parameter(Name=name, Value=FAKE_TOKEN, Type="SecureString")
    assert read_secret(ssm, name) == FAKE_TOKEN
    captured = capsys.readouterr()
    assert FAKE_TOKEN not in captured.out + captured.err


def test_an_unreachable_ssm_is_a_storage_error_without_the_value() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ssm = boto3.client(
        "ssm",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    name = parameter_name()
    with pytest.raises(StorageError) as info:
        read_secret(ssm, name)
    assert info.value.operation == "read_secret"
    assert info.value.error_code == "EndpointConnectionError"
    assert name in str(info.value)
