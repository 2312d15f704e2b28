"""An endpoint onto the test's (in-process) moto DynamoDB that applies one request at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from local_stack import moto_endpoint


@contextmanager
def one_request_at_a_time() -> Iterator[str]:
    """Yield the URL of an endpoint onto the same DynamoDB data that applies one request at a time.

    The moto server runs each request in its own thread with no lock, so two conditional
    writes to one item can both pass their condition (measured: both threads "won" within
    a few rounds). Real DynamoDB serializes writes to an item; this endpoint restores that
    guarantee, so a race tests our conditions, not moto. It shares moto's state because the
    `aws` fixture's moto server runs in this process (one per xdist worker).
    """
    lock = threading.Lock()

    def serialize(app: Any) -> Any:
        def serialized(environ: Any, start_response: Any) -> list[bytes]:
            with lock:
                return list(app(environ, start_response))

        return serialized

    with moto_endpoint(wrap=serialize) as endpoint:  # moto's state is per process
        yield endpoint
