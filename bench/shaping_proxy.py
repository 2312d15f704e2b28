"""A TCP proxy on 127.0.0.1 that makes a local endpoint answer like a remote one.

Each response is held back ``first_byte_s`` after the request that asked for it, then
sent at no more than ``bytes_per_s`` per connection: the two things that decide how long
a request to S3 or DynamoDB takes from a Lambda function (request rate and size aside).
Requests themselves pass unshaped (a restore sends small requests). Used by the benches
only (``shaping_process`` runs it in a process of its own); it stops with its ``with`` block.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

_CHUNK = 64 * 1024


class ShapingProxy:
    """``with ShapingProxy(upstream_port, first_byte_s=0.015, bytes_per_s=90e6) as url:``"""

    def __init__(self, upstream_port: int, *, first_byte_s: float, bytes_per_s: float) -> None:
        self.upstream_port = upstream_port
        self.first_byte_s = first_byte_s
        self.bytes_per_s = bytes_per_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> str:
        threading.Thread(target=self._accept, daemon=True).start()
        return self.url

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            asked = threading.Event()  # a request went up since the last response began
            threading.Thread(target=self._requests, args=(client, upstream, asked), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, asked), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, asked: threading.Event) -> None:
        with client, upstream:
            while data := _recv(client):
                asked.set()
                upstream.sendall(data)
            _shutdown(upstream)

    def _responses(self, upstream: socket.socket, client: socket.socket, asked: threading.Event) -> None:
        sent_until = 0.0
        while data := _recv(upstream):
            now = time.perf_counter()
            if asked.is_set():  # the first bytes of a response: one round trip away
                asked.clear()
                sent_until = now + self.first_byte_s
            sent_until = max(sent_until, now) + len(data) / self.bytes_per_s
            delay = sent_until - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                client.sendall(data)
            except OSError:
                break
        _shutdown(client)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(_CHUNK)
    except OSError:
        return b""


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def _serve(upstream_port: int, first_byte_s: float, bytes_per_s: float, urls: Any, stop: Any) -> None:
    with ShapingProxy(upstream_port, first_byte_s=first_byte_s, bytes_per_s=bytes_per_s) as url:
        urls.put(url)
        stop.wait()


@contextlib.contextmanager
def shaping_process(upstream_port: int, *, first_byte_s: float, bytes_per_s: float) -> Iterator[str]:
    """A ``ShapingProxy`` in its own process: its threads never compete for the measured
    process's GIL (a real network costs the client no CPU). Yields its URL."""
    context = multiprocessing.get_context("spawn")
    urls, stop = context.Queue(), context.Event()
    process = context.Process(
        target=_serve, args=(upstream_port, first_byte_s, bytes_per_s, urls, stop), daemon=True
    )
    process.start()
    try:
        yield urls.get(timeout=30)
    finally:
        stop.set()
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
