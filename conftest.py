"""Test stack shared by every package's tests: a local AWS endpoint that starts itself.

The moto server on 127.0.0.1 always serves DynamoDB (and SSM, STS, ...); S3 and SQS come
from LocalStack, started through testcontainers, when a Docker engine answers and the
LocalStack image is built (infra/images/localstack/build.sh), else from moto too.
`AWS_TEST_BACKEND=moto|localstack` forces one (localstack fails loudly when it cannot start).
The summary at the end says which ran. Every test gets its own freshly provisioned
resources (unique names), so state never leaks between cases.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.config import Config

from agentbot.local_aws import LOCAL_CREDENTIALS, LocalEndpoints, aws_endpoint, local_client
from agentbot.provisioning import ResourceNames, StackResources, provision


@dataclass
class LocalAws:
    """One test's AWS: the endpoint, ready clients and the resources provisioned for it."""

    endpoints: LocalEndpoints
    resources: StackResources
    s3: Any
    dynamodb: Any
    sqs: Any

    @property
    def backend(self) -> str:
        return self.endpoints.backend

    @property
    def endpoint(self) -> str:
        """The moto server: DynamoDB and every service LocalStack does not serve."""
        return self.endpoints.default

    def client(self, service: str, **kwargs: Any) -> Any:
        return make_client(service, self.endpoints.url_for(service), **kwargs)


def make_client(service: str, endpoint: str, **kwargs: Any) -> Any:
    return local_client(
        service, endpoint, config=Config(retries={"max_attempts": 2, "mode": "standard"}), **kwargs
    )


_started: list[LocalEndpoints] = []


@pytest.fixture(scope="session")
def aws_backend() -> Iterator[LocalEndpoints]:
    """The local AWS endpoints, started once per test session."""
    with aws_endpoint() as started:
        _started.append(started)
        yield started


@pytest.fixture
def aws(aws_backend: LocalEndpoints, monkeypatch: pytest.MonkeyPatch) -> LocalAws:
    """Fresh table, bucket and FIFO queues for this test, with the handlers' env vars set."""
    for name, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name, value in aws_backend.environment().items():
        monkeypatch.setenv(name, value)
    s3, dynamodb, sqs = (make_client(s, aws_backend.url_for(s)) for s in ("s3", "dynamodb", "sqs"))
    names = ResourceNames(prefix=f"t{uuid.uuid4().hex[:12]}")
    resources = provision(dynamodb=dynamodb, s3=s3, sqs=sqs, names=names)
    for name, value in resources.environment().items():
        monkeypatch.setenv(name, value)
    return LocalAws(aws_backend, resources, s3, dynamodb, sqs)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say which local AWS really ran; `AGENTBOT_EMULATOR_REPORT` also gets the line (CI)."""
    if not _started:
        return
    line = f"emulator: {_started[0].describe()}"
    terminalreporter.write_sep("=", line)
    report = os.environ.get("AGENTBOT_EMULATOR_REPORT")
    if report:
        with open(report, "w", encoding="utf-8") as out:
            out.write(line + "\n")


@pytest.fixture(autouse=True)
def _no_real_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see credentials or profiles of the machine they run on."""
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_TEST_BACKEND":
            monkeypatch.delenv(name, raising=False)
