"""AWS on this machine: the moto server on 127.0.0.1, plus LocalStack (S3, SQS) when Docker answers."""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from ._sigv4 import LocalCredentials, signed_by

Backend = Literal["moto", "localstack"]

# Built locally by infra/images/localstack/build.sh (no registry is needed or used).
LOCALSTACK_IMAGE = "agentbot-localstack:4.14.0"
# What LocalStack serves in tests; DynamoDB stays on moto (see aws_endpoint).
LOCALSTACK_SERVICES = ("s3", "sqs")

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

    signing = {
        "aws_access_key_id": LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        **kwargs,  # other credentials (an endpoint that checks signatures) win
    }
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
        config=config,
        **signing,
    )


def docker_available() -> bool:
    """True when a Docker engine answers on ``DOCKER_HOST`` (or the default socket)."""
    try:
        import docker  # comes with testcontainers (a dev dependency)

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def localstack_image_present(image: str) -> bool:
    """True when ``image`` is in the engine's store (it is built locally, never pulled)."""
    import docker

    client = docker.from_env(timeout=10)
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()


@dataclass(frozen=True)
class BackendChoice:
    """Which local AWS runs, and why (the reason is shown in the test summary)."""

    backend: Backend
    reason: str


def choose_backend() -> BackendChoice:
    """`AWS_TEST_BACKEND` if set (moto|localstack), else LocalStack when Docker answers and its
    image is built, else moto."""
    forced = os.environ.get("AWS_TEST_BACKEND", "").strip().lower()
    if forced:
        if forced not in {"moto", "localstack"}:
            raise ValueError(f"AWS_TEST_BACKEND must be 'moto' or 'localstack', got {forced!r}")
        return BackendChoice(cast(Backend, forced), "AWS_TEST_BACKEND")
    if not docker_available():
        return BackendChoice("moto", "no Docker engine answers")
    if not localstack_image_present(localstack_image()):
        return BackendChoice(
            "moto", f"image {localstack_image()} not built (infra/images/localstack/build.sh)"
        )
    return BackendChoice("localstack", "Docker answers and the image is built")


@dataclass(frozen=True)
class LocalEndpoints:
    """Where each AWS service of a local run answers.

    ``default`` is the moto server (DynamoDB, SSM, STS, ... and everything else);
    ``services`` sends some services elsewhere (LocalStack's S3 and SQS). ``environment()``
    is what boto3 reads: `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`.
    """

    backend: Backend
    default: str
    services: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""

    def url_for(self, service: str) -> str:
        """The endpoint URL of ``service`` (boto3's service name: "s3", "sqs", "dynamodb")."""
        return self.services.get(service, self.default)

    def environment(self) -> dict[str, str]:
        """boto3's endpoint variables for these endpoints."""
        env = {"AWS_ENDPOINT_URL": self.default}
        env.update({f"AWS_ENDPOINT_URL_{s.upper()}": url for s, url in self.services.items()})
        return env

    def describe(self) -> str:
        """One line saying what really runs, e.g. for a test summary."""
        if self.backend == "localstack":
            served = ", ".join(sorted(self.services))
            others = sorted({"dynamodb"} - set(self.services))
            return f"localstack ({served}) + moto ({', '.join(others)})"
        return f"moto only ({self.reason})" if self.reason else "moto only"


@contextmanager
def moto_endpoint(require: LocalCredentials | None = None) -> Iterator[str]:
    """Run the moto server on 127.0.0.1 (a free port) for the life of the block. With
    ``require``, every request must be signed with those credentials (see ``local_stack._sigv4``);
    moto's own admin paths (``/moto-api/``: dump, reset) are refused then too."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from ._moto_ec2_deferred import import_moto_ssm_without_ec2
    from ._moto_request_ids import stamp_request_ids_only_where_tagged

    import_moto_ssm_without_ec2()
    stamp_request_ids_only_where_tagged()

    class HostsRemembered(DomainDispatcherApplication):
        """moto finds a request's service by listing its package directory (an ``isdir`` per
        service) and trying every URL pattern, for every request: a quarter of its CPU per
        request. The answer for a host never changes, so each is worked out once."""

        def __init__(self, create_app: Any) -> None:
            super().__init__(create_app)
            self._backend_of: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            # Called under the dispatcher's own lock, so the dict needs none.
            if host not in self._backend_of:
                self._backend_of[host] = super().get_backend_for_host(host)
            return self._backend_of[host]

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    app: Any = _DynamoDBOneAtATime(HostsRemembered(create_backend_app))
    if require is not None:
        app = _SignedRequestsOnly(app, require)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


class _DynamoDBOneAtATime:
    """WSGI middleware: DynamoDB requests are applied one at a time.

    The moto server runs each request in its own thread and DynamoDB's there take no lock, so
    two conditional writes to one item can both pass their condition (two holders of one
    lease). Real DynamoDB serializes writes to an item; this restores that, so a race between
    two of our processes tests our conditions, not moto. Other services (an SQS long poll) pass.
    One lock per process, as moto's data is; the body is read before it is taken (a client
    that stalls mid-request holds up no one).
    """

    _lock = threading.Lock()

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.app(environ, start_response)
        _buffer_body(environ)
        with self._lock:
            response = self.app(environ, start_response)
            try:
                return list(response)
            finally:
                if hasattr(response, "close"):
                    response.close()


def _buffer_body(environ: dict[str, Any]) -> bytes:
    """Read the request's body whole and put it back as a buffer the app can read again."""
    from werkzeug.wsgi import get_input_stream

    body: bytes = get_input_stream(environ).read()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return body


class _SignedRequestsOnly:
    """WSGI middleware: pass a request on only if it is signed with the given credentials."""

    _DENIED = (
        b"<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>agentbot dev: requests must be "
        b"signed with the functions' credentials</Message></Error></ErrorResponse>"
    )

    def __init__(self, app: Any, credentials: LocalCredentials) -> None:
        self.app = app
        self.credentials = credentials

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = _buffer_body(environ)
        headers = {
            key[5:].replace("_", "-"): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        if environ.get("CONTENT_LENGTH"):
            headers["content-length"] = environ["CONTENT_LENGTH"]
        path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        if "?" not in path and environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        url = f"http://{headers.get('HOST', 'localhost')}{path}"
        method = environ.get("REQUEST_METHOD", "GET")
        if not signed_by(self.credentials, method=method, url=url, headers=headers, body=body):
            start_response(
                "403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(self._DENIED)))]
            )
            return [self._DENIED]
        return self.app(environ, start_response)


def localstack_image() -> str:
    """The LocalStack image to run: `AGENTBOT_LOCALSTACK_IMAGE`, else the one build.sh makes."""
    return os.environ.get("AGENTBOT_LOCALSTACK_IMAGE", "").strip() or LOCALSTACK_IMAGE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def localstack_endpoint(timeout_s: float = 120.0) -> Iterator[str]:
    """Run LocalStack (S3 and SQS) through testcontainers for the life of the block.

    The port is published on 127.0.0.1 only and is also the one LocalStack puts in the queue
    URLs it returns, so those URLs work from this machine. Raises when it cannot start.
    """
    # Ryuk (testcontainers' reaper) is an image that cannot be pulled here; the container is
    # removed by the `with` below instead. This machine looks like a container itself, so
    # testcontainers must not try to reach the engine through a bridge gateway.
    for name, value in {
        "TESTCONTAINERS_RYUK_DISABLED": "true",
        "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
        "TC_HOST": "127.0.0.1",
    }.items():
        os.environ.setdefault(name, value)
    from testcontainers.community.localstack import LocalStackContainer

    port = _free_port()
    container = (
        LocalStackContainer(image=localstack_image(), region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"])
        .with_services(*LOCALSTACK_SERVICES)
        .with_env("LOCALSTACK_HOST", f"127.0.0.1:{port}")
        .with_env("SQS_ENDPOINT_STRATEGY", "path")
        .with_env("DNS_ADDRESS", "0")
    )
    # Published on 127.0.0.1 only; with_bind_ports() cannot name a host address (docker-py can:
    # it takes (address, port), which testcontainers' `ports` annotation, bare host ports, omits).
    container.ports = {4566: ("127.0.0.1", port)}  # type: ignore[dict-item]
    try:
        container.start(timeout=timeout_s)
        yield f"http://127.0.0.1:{port}"
    finally:
        container.stop()  # removes the container, also one that never became ready


@contextmanager
def aws_endpoint(backend: Backend | None = None, *, moto_url: str | None = None) -> Iterator[LocalEndpoints]:
    """The local AWS for a test session: moto always (DynamoDB and the rest; the server at
    ``moto_url``, else one started here), plus LocalStack for S3 and SQS when chosen.
    LocalStack never serves DynamoDB: it would run DynamoDB Local, whose licence is not open
    source."""
    choice = BackendChoice(backend, "asked for") if backend else choose_backend()
    with nullcontext(moto_url) if moto_url else moto_endpoint() as moto:
        if choice.backend == "moto":
            yield LocalEndpoints("moto", moto, reason=choice.reason)
            return
        with localstack_endpoint() as localstack_url:
            yield LocalEndpoints(
                "localstack",
                moto,
                dict.fromkeys(LOCALSTACK_SERVICES, localstack_url),
                reason=choice.reason,
            )
