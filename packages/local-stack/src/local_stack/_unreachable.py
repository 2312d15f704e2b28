"""Model endpoints that cannot be reached, on 127.0.0.1: one that refuses every connection, and
one that never accepts it (as behind a firewall that drops the packets)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

# Connections made to fill a blackholed port's accept queue (with a backlog of 0 it holds one;
# the next handshakes wait in vain as they are dropped).
_FILLERS = 2


@contextlib.contextmanager
def refusing_endpoint() -> Iterator[str]:
    """The base URL of a port that refuses connections: it is held (bound, so nothing else takes
    it) but not listened on, so a connection is reset at once."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


@contextlib.contextmanager
def blackholed_endpoint() -> Iterator[str]:
    """The base URL of a port where a connection never completes: it listens, never accepts,
    and its full accept queue makes the kernel drop every further handshake."""
    with contextlib.ExitStack() as held:
        listener = held.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(_FILLERS):
            filler = held.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(address)
        yield f"http://127.0.0.1:{address[1]}"
