"""An AWS endpoint on this machine: the moto server on 127.0.0.1, or LocalStack when Docker answers."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LOCALSTACK_IMAGE = "localstack/localstack:4.4.0"  # pinned: newer `latest` needs an auth token

# Credentials for local endpoints only; they open nothing real.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def local_client(service: str, endpoint: str, *, config: Any = None, **kwargs: Any) -> Any:
    """A boto3 client for ``service`` at a local endpoint, signed with LOCAL_CREDENTIALS.

    ``config`` is a ``botocore.config.Config`` (retries, timeouts); other keywords go to
    ``boto3.client``.
    """
    import boto3  # here, so `agentbot` commands that never call AWS start without it

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=config,
        **kwargs,
    )


def docker_available() -> bool:
    """True when a Docker engine answers (not just the client being installed)."""
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def choose_backend() -> str:
    """`AWS_TEST_BACKEND` if set (moto|localstack), else LocalStack when Docker answers, else moto."""
    forced = os.environ.get("AWS_TEST_BACKEND", "").strip().lower()
    if forced:
        if forced not in {"moto", "localstack"}:
            raise ValueError(f"AWS_TEST_BACKEND must be 'moto' or 'localstack', got {forced!r}")
        return forced
    return "localstack" if docker_available() else "moto"


@contextmanager
def moto_endpoint() -> Iterator[str]:
    """Run the moto server on 127.0.0.1 (a free port) for the life of the block."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def localstack_endpoint() -> Iterator[str]:
    """Run LocalStack through testcontainers for the life of the block."""
    from testcontainers.community.localstack import LocalStackContainer

    with LocalStackContainer(image=LOCALSTACK_IMAGE).with_services("s3", "dynamodb", "sqs") as ls:
        yield ls.get_url()


@contextmanager
def aws_endpoint(backend: str | None = None) -> Iterator[tuple[str, str]]:
    """Yield (backend, endpoint URL) for the chosen local AWS."""
    chosen = backend or choose_backend()
    runner = localstack_endpoint if chosen == "localstack" else moto_endpoint
    with runner() as url:
        yield chosen, url
