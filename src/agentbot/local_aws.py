"""An AWS endpoint on this machine: the moto server on 127.0.0.1, or LocalStack when Docker answers."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .sigv4 import LocalCredentials, signed_by

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
def moto_endpoint(require: LocalCredentials | None = None) -> Iterator[str]:
    """Run the moto server on 127.0.0.1 (a free port) for the life of the block. With
    ``require``, every request must be signed with those credentials (see ``agentbot.sigv4``);
    moto's own admin paths (``/moto-api/``: dump, reset) are refused then too."""
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    app: Any = DomainDispatcherApplication(create_backend_app)
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
        import io

        from werkzeug.wsgi import get_input_stream

        body = get_input_stream(environ).read()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
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
