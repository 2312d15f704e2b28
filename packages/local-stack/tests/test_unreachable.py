"""The unreachable model endpoints the runtime's tests point at."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest
from local_stack import blackholed_endpoint, refusing_endpoint


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    assert parts.hostname == "127.0.0.1" and parts.port is not None
    return parts.hostname, parts.port


def test_a_refusing_endpoint_refuses_at_once() -> None:
    with refusing_endpoint() as base_url:
        started = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(_address(base_url), timeout=5).close()
        assert time.monotonic() - started < 1


def test_a_blackholed_endpoint_never_completes_a_connection() -> None:
    with blackholed_endpoint() as base_url:
        for _ in range(2):  # not only the first try: every one waits in vain
            with pytest.raises(TimeoutError):
                socket.create_connection(_address(base_url), timeout=1).close()
