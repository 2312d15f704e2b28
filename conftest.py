"""Test stack shared by every package's tests: a local AWS endpoint that starts itself.

The moto server on 127.0.0.1 by default; LocalStack via testcontainers when a Docker
engine answers; `AWS_TEST_BACKEND=moto|localstack` forces one. Every test gets its
own freshly provisioned resources (unique names), so state never leaks between cases.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.config import Config

from agentbot.local_aws import LOCAL_CREDENTIALS, aws_endpoint, local_client
from agentbot.provisioning import ResourceNames, StackResources, provision


@dataclass
class LocalAws:
    """One test's AWS: the endpoint, ready clients and the resources provisioned for it."""

    backend: str
    endpoint: str
    resources: StackResources
    s3: Any
    dynamodb: Any
    sqs: Any

    def client(self, service: str, **kwargs: Any) -> Any:
        return make_client(service, self.endpoint, **kwargs)


def make_client(service: str, endpoint: str, **kwargs: Any) -> Any:
    return local_client(
        service, endpoint, config=Config(retries={"max_attempts": 2, "mode": "standard"}), **kwargs
    )


@pytest.fixture(scope="session")
def aws_backend() -> Iterator[tuple[str, str]]:
    """(backend name, endpoint URL) of the local AWS, started once per test session."""
    with aws_endpoint() as started:
        yield started


@pytest.fixture
def aws(aws_backend: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> LocalAws:
    """Fresh table, bucket and FIFO queues for this test, with the handlers' env vars set."""
    backend, endpoint = aws_backend
    for name, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    s3, dynamodb, sqs = (make_client(s, endpoint) for s in ("s3", "dynamodb", "sqs"))
    names = ResourceNames(prefix=f"t{uuid.uuid4().hex[:12]}")
    resources = provision(dynamodb=dynamodb, s3=s3, sqs=sqs, names=names)
    for name, value in resources.environment().items():
        monkeypatch.setenv(name, value)
    return LocalAws(backend, endpoint, resources, s3, dynamodb, sqs)


@pytest.fixture(autouse=True)
def _no_real_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see credentials or profiles of the machine they run on."""
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_TEST_BACKEND":
            monkeypatch.delenv(name, raising=False)
