"""The lifecycle every local server shares: bind 127.0.0.1 (port 0 = a free one), serve in a
daemon thread, stop, and be a context manager."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a peer goes away (a client
    hanging up mid-answer is what the code under test does on a stop)."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a peer or the server itself went away
            super().handle_error(request, client_address)


class LoopbackServer:
    """An HTTP server on 127.0.0.1 served from a daemon thread.

    Subclasses give the request handler class (`handler_class`) and may extend `start` and
    `stop`; `port` and `base_url` are known once started. `stop` is idempotent.
    """

    # How often the serving thread checks for `stop` (seconds); lower stops faster.
    poll_interval_s: float = 0.5
    server_class: type[ThreadingHTTPServer] = QuietHTTPServer
    thread_name: str | None = None

    def __init__(self, *, port: int = 0) -> None:
        self._requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._serving = False
        self._bound_port: int | None = None  # kept after stop: where it served

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler, bound to this server's state; subclasses implement it."""
        raise NotImplementedError

    def bind(self) -> None:
        """Take the port now (a server whose address must be known before it serves)."""
        if self._server is None:
            self._server = self.server_class(("127.0.0.1", self._requested_port), self.handler_class())
            self._server.daemon_threads = True
            self._bound_port = int(self._server.server_address[1])

    def start(self) -> Self:
        """Bind and start serving; returns self so `X().start()` reads as one step."""
        self.bind()
        assert self._server is not None
        self._serving = True
        threading.Thread(
            target=self._server.serve_forever,
            args=(self.poll_interval_s,),
            name=self.thread_name,
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (a no-op when not started or already stopped)."""
        server, self._server = self._server, None
        if server is not None:
            if self._serving:
                server.shutdown()
            self._serving = False
            server.server_close()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The port it serves (or served, once stopped)."""
        if self._bound_port is None:
            raise RuntimeError(f"{type(self).__name__} is not started: call start() first")
        return self._bound_port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
