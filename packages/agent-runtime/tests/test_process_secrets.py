"""The moved-secrets hand-over of _process_secrets, in this process: a real pipe, a real
container-credentials endpoint on 127.0.0.1 (the whole re-exec is tested under awslambdaric
in tests/test_runtime_secrets.py)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from agent_runtime import _process_secrets, aws_session, held_secrets, is_secret_variable


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_process_secrets, "_held", {})
    yield


def hand_over(secrets: dict[str, str]) -> int:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as pipe:
        pipe.write(json.dumps(secrets).encode())
    _process_secrets._receive(read_end)
    return read_end


def test_secret_names() -> None:
    for name in (
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "GITHUB_TOKEN",
        "DB_PASSWORD",
    ):
        assert is_secret_variable(name), name
    for name in (
        "PATH",
        "SESSIONS_TABLE",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_LAMBDA_RUNTIME_API",
        "BOT_TOKEN_PARAMETER",  # where a secret lives, not the secret
        "WEBHOOK_SECRET_PARAMETER",
    ):
        assert not is_secret_variable(name), name


def test_not_under_awslambdaric_nothing_moves(held: None) -> None:
    before = dict(os.environ)
    _process_secrets.isolate_process_secrets()  # pytest is not `python -m awslambdaric`
    assert dict(os.environ) == before and held_secrets() == {}


def test_moved_static_credentials_reach_boto3_and_the_pipe_is_closed(held: None) -> None:
    fd = hand_over({"AWS_ACCESS_KEY_ID": "AKIDMOVED", "AWS_SECRET_ACCESS_KEY": "moved-secret"})
    with pytest.raises(OSError):
        os.fstat(fd)  # closed after reading: no child process can inherit it
    credentials = aws_session().get_credentials().get_frozen_credentials()
    assert (credentials.access_key, credentials.secret_key) == ("AKIDMOVED", "moved-secret")


def test_moved_container_credentials_token_is_used(held: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    seen: list[str | None] = []

    class Credentials(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            body = json.dumps(
                {
                    "AccessKeyId": "AKIDCONTAINER",
                    "SecretAccessKey": "container-secret",
                    "Token": "container-token",
                    "Expiration": "2099-01-01T00:00:00Z",
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Credentials)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hand_over(
            {
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{server.server_address[1]}/creds",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": "moved-auth-token",
            }
        )
        credentials = aws_session().get_credentials().get_frozen_credentials()
    finally:
        server.shutdown()
        server.server_close()
    assert credentials.access_key == "AKIDCONTAINER" and credentials.token == "container-token"
    assert seen == ["moved-auth-token"]
