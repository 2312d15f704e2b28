"""A whole HTTP call bounded by one deadline.

httpx's timeouts bound each phase (connect, each write, each read), not the call: an answer
that trickles in keeps every read short and the call going for as long as it trickles. A call
with a deadline runs in a thread of its own that the caller stops waiting for at the deadline;
left to finish on its own (its phase timeouts end it), it holds nothing the caller waits on.
Given up before its request began to go out (still connecting: a slow DNS answer, TCP and TLS
handshakes each within its own timeout), it never sends it: sent late, the message would
reach the chat beside the one the record's retry sends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import httpx

# httpcore's trace event as a request's first byte is about to go (HTTP/1.1 and HTTP/2).
_SENDING = "send_request_headers.started"


class WholeCallTimeout(httpx.TimeoutException):
    """Raised when a call's deadline came before its answer did: it may have been done."""


class WholeCallUnsent(httpx.TimeoutException):
    """Raised when a call's deadline came before its request began to go out: never sent."""


class _SendingRefused(Exception):
    """Ends a call given up before its request went out, as it is about to (in its thread)."""


class _SendGate:
    """Whether the caller still waits when a call's request is about to go out, decided once
    under a lock: either the request goes (the call may be done) or it never does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._given_up = False
        self._sending = False

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event.endswith(_SENDING):
            with self._lock:
                if self._given_up:
                    raise _SendingRefused
                self._sending = True

    def give_up(self) -> bool:
        """Stop the request going out if it has not begun to; whether it had."""
        with self._lock:
            self._given_up = True
            return self._sending


# What a call is handed to pass to httpx as the request's ``extensions``.
Extensions = dict[str, Any]


def call_within(seconds: float, call: Callable[[Extensions], httpx.Response]) -> httpx.Response:
    """``call(extensions)``'s response if it comes within ``seconds`` (``extensions``: for
    httpx's request); else WholeCallTimeout, or WholeCallUnsent when its request had not
    begun to go out, nor will (``call``'s own httpx errors are raised as they are)."""
    done = threading.Event()
    outcome: list[httpx.Response | BaseException] = []
    gate = _SendGate()

    def run() -> None:
        try:
            outcome.append(call({"trace": gate.trace}))
        except BaseException as exc:  # handed to the caller, who may still be waiting
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="bot-api-call", daemon=True).start()
    if not done.wait(seconds):
        if not gate.give_up():
            raise WholeCallUnsent("the call's time ran out before its request went out")
        raise WholeCallTimeout("the call's time ran out before its answer came")
    [result] = outcome
    if isinstance(result, BaseException):
        raise result
    return result
