"""A whole HTTP call bounded by one deadline.

httpx's timeouts bound each phase (connect, each write, each read), not the call: an answer
that trickles in keeps every read short and the call going for as long as it trickles. A call
with a deadline runs in a thread of its own that the caller stops waiting for at the deadline;
left to finish on its own (its phase timeouts end it), it holds nothing the caller waits on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx


class WholeCallTimeout(httpx.TimeoutException):
    """Raised when a call's deadline came before its answer did: it may have been done."""


def call_within(seconds: float, call: Callable[[], httpx.Response]) -> httpx.Response:
    """``call()``'s response if it comes within ``seconds``; else WholeCallTimeout (``call``'s
    own httpx errors are raised as they are)."""
    done = threading.Event()
    outcome: list[httpx.Response | BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the caller, who may still be waiting
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="bot-api-call", daemon=True).start()
    if not done.wait(seconds):
        raise WholeCallTimeout("the call's time ran out before its answer came")
    [result] = outcome
    if isinstance(result, BaseException):
        raise result
    return result
