"""The lifecycle the local servers share (LoopbackServer)."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from local_stack import LoopbackServer


class _Hello(LoopbackServer):
    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"hello")

        return Handler


def test_serves_on_a_free_loopback_port_until_stopped() -> None:
    with _Hello() as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}" and server.port > 0
        assert httpx.get(server.base_url).text == "hello"
        port = server.port
    assert not server.running
    with pytest.raises(ConnectionRefusedError):  # nothing listens there any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_stop_is_idempotent_and_safe_before_start() -> None:
    server = _Hello()
    server.stop()
    server.start().stop()
    server.stop()
    assert server.port > 0  # where it served


def test_its_address_is_unknown_before_it_binds() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = _Hello().port


def test_bound_before_serving_knows_its_address() -> None:
    server = _Hello()
    server.bind()
    port = server.port
    server.start()
    try:
        assert server.port == port and httpx.get(server.base_url).text == "hello"
    finally:
        server.stop()
