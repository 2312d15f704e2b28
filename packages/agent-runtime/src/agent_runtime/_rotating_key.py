"""The Anthropic API key as the model proxy uses it: read from SSM once, and read again when
the API refuses it, so a key the operator rotates in SSM reaches a warm container without a
redeploy. One re-read per ``REREAD_INTERVAL_S`` at most: a key that is simply bad does not
turn every refused call into an SSM request."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from session_core import SessionCoreError, get_logger, read_secret

log = get_logger(__name__)

REREAD_INTERVAL_S = 30.0


class RotatingKey:
    """The key in SSM parameter ``parameter``, as of the last time the API refused one."""

    def __init__(
        self,
        ssm: Any,
        parameter: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        reread_interval_s: float = REREAD_INTERVAL_S,
    ) -> None:
        self._ssm = ssm
        self._parameter = parameter
        self._clock = clock
        self._interval_s = reread_interval_s
        self._value: str | None = None
        self._last_reread = -math.inf
        self._lock = threading.Lock()

    def current(self) -> str:
        """The key to send (ConfigError or StorageError from ``read_secret`` on first use)."""
        with self._lock:
            if self._value is None:
                self._value = read_secret(self._ssm, self._parameter)
            return self._value

    def renew(self, refused: str) -> bool:
        """The API refused ``refused``: whether another key is now current, worth sending the
        call again with. Reads the parameter again unless it did less than the interval ago."""
        with self._lock:  # calls refused together wait for one read, then use its key
            if self._value is not None and self._value != refused:
                return True  # renewed already, while this call was on its way
            now = self._clock()
            if now - self._last_reread < self._interval_s:
                return False
            self._last_reread = now
            try:
                self._value = read_secret(self._ssm, self._parameter, fresh=True)
            except SessionCoreError as exc:  # names the parameter, never a value
                log.warning("model_key.reread_failed", error_type=type(exc).__name__, reason=str(exc))
                return False
            renewed = self._value != refused
            log.info("model_key.reread", renewed=renewed)
            return renewed
