"""The local moto server in a process of its own: for the benches, and shared by a test run's
xdist workers.

AWS is remote: its work must not share a bench's GIL and CPU time, as moto in a thread of the
bench would; and one server for all workers imports and builds moto's backends once, not once
per worker. The server is `moto_endpoint` (what `agentbot dev` uses) and stops itself when its
starter closes its stdin, or dies.
"""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
from collections.abc import Iterator

_SERVE = """
import os
import sys
from local_stack import moto_endpoint
with moto_endpoint() as url:
    print(url, flush=True)
    os.dup2(2, 1)  # nobody reads stdout from now on: a full pipe would stall the server
    sys.stdin.read()  # until the starter closes it (or exits)
"""


@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """``with moto_process() as endpoint:`` the URL of a moto server on 127.0.0.1, in a process
    of its own."""
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a Ctrl-C meant for the starter must not kill it under its users
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        started, _, _ = select.select([server.stdout], [], [], 60)
        url = server.stdout.readline().strip() if started else ""
        if not url:
            raise RuntimeError("the moto server did not start within 60 s (see its output above)")
        yield url
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
