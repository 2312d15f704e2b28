"""A step repeated in a daemon thread while a turn runs (the typing indicator, the live view):
the one start/stop lifecycle both need, so a step in flight is waited for before the answer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

from session_core import get_logger, with_log_context

log = get_logger(__name__)


class StopsOnExit:
    """Base of a helper used as ``with helper:`` around a turn: leaving the block calls its
    ``stop()`` (an exception in the block included)."""

    def stop(self) -> None:
        """End what the helper runs (overridden)."""
        raise NotImplementedError

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class RepeatingStep:
    """Calls ``step`` in a daemon thread named ``name`` every ``interval_s`` (first at once when
    ``at_once``, else after one interval) from ``start()`` until ``stop()``. A step that raises
    is logged as ``failure_event`` and the repeats go on: a side show must never break a turn."""

    def __init__(
        self,
        step: Callable[[], None],
        *,
        interval_s: float,
        name: str,
        failure_event: str,
        at_once: bool = False,
        join_timeout_s: float,
    ) -> None:
        self._step = step
        self._interval_s = interval_s
        self._failure_event = failure_event
        self._at_once = at_once
        self._join_timeout_s = join_timeout_s
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopped(self) -> bool:
        """Whether ``stop()`` was called (a step checks it before a late side effect)."""
        return self._stop.is_set()

    def start(self) -> None:
        """Start the repeats; their log lines name the update and chat bound here."""
        self._thread = threading.Thread(target=with_log_context(self._run), name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the repeats and wait (at most ``join_timeout_s``) for a step in flight."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=self._join_timeout_s)

    def wait_ended(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) for a step still in flight after ``stop()`` (one that
        outlasted its wait there); whether none is."""
        if self._thread is None:
            return True
        self._thread.join(timeout=max(timeout_s, 0.0))
        return not self._thread.is_alive()

    def _run(self) -> None:
        if self._at_once and not self._stop.is_set():
            self._step_logged()
        while not self._stop.wait(self._interval_s):
            self._step_logged()

    def _step_logged(self) -> None:
        try:
            self._step()
        except Exception:
            log.exception(self._failure_event)
