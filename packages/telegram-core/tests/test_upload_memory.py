"""A file the agent sends may be 50 MB, and the consumer that uploads it has 256 MB in all:
the upload must not hold a second copy of the file while it goes out. Measured over a real
socket (the HTTP stack, not a mock that reads the whole request), to a server that throws
the bytes away as they come, so what is counted is the client's."""

from __future__ import annotations

import socket
import threading
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest
from telegram_core import BotApi

_ANSWER = b'{"ok": true, "result": {"message_id": 7}}'
FILE_BYTES = 20 * 1024 * 1024


@pytest.fixture
def discarding_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that reads each request into one small buffer, over and
    over (allocating nothing per byte), and answers a sent message."""
    listener = socket.create_server(("127.0.0.1", 0))
    buffer = bytearray(64 * 1024)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(4096)
                header, _, body_start = head.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in header.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                left = length - len(body_start)
                while left > 0:
                    left -= conn.recv_into(buffer, min(left, len(buffer)))
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(_ANSWER)}\r\n\r\n".encode()
                    + _ANSWER
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(timeout=5)


def test_a_large_upload_holds_no_second_copy_of_the_file(discarding_server: str) -> None:
    content = b"x" * FILE_BYTES
    with httpx.Client(timeout=30) as http:
        api = BotApi(http=http, token="1:test", base_url=discarding_server)
        tracemalloc.start()
        try:
            assert api.send_file(5, "report.zip", content, mime_type="application/zip") == 7
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < FILE_BYTES // 4, f"the upload took {peak / 2**20:.1f} MiB besides the file"
