"""A secret as a warm container uses it: read from SSM once, and read again when whoever checks
it refuses it (the Anthropic API, Telegram, an MCP server) or when a caller's secret does not
match it (the webhook's), so a value the operator rotates in SSM reaches the container without
a redeploy. One read per ``SECRET_REREAD_INTERVAL_S`` at most: a value that is simply bad (revoked,
no new one yet), or callers who keep sending a wrong one, do not turn every request into an SSM
request. Where anyone may present a wrong value (the webhook's callers), the first read counts
too (``first_read_counts``): a cold container's first forged call costs one read, not two. A
secret only the operator's rotation makes wrong (a token, a key) is read again at its first
refusal, however fresh: a container started just before a rotation takes the new value at once."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ._errors import ConfigError, SecretAccessDeniedError, SessionCoreError
from ._logging import get_logger
from ._secrets import cached_secret, read_secret

log = get_logger(__name__)

SECRET_REREAD_INTERVAL_S = 30.0


class SecretSource(Protocol):
    """A secret that may change while the process runs.

    ``name`` says what the operator fixes when it is wrong (an SSM parameter's name); never a
    value. ``current()`` is the value to use now. ``renew(refused)``: ``refused`` (a value
    ``current()`` gave) was refused or did not match; whether another value is current now.
    ``unreadable``: its last re-read was refused to the role, and the operator told so: a
    refusal of the value in use is that, not a value to replace.
    """

    name: str
    unreadable: bool

    def current(self) -> str: ...

    def renew(self, refused: str) -> bool: ...


class FixedSecret:
    """A secret that never changes (given on a command line, in a test): never renewed."""

    def __init__(self, value: str, *, name: str = "the secret") -> None:
        self._value = value
        self.name = name
        self.unreadable = False  # never read again

    def current(self) -> str:
        """The value."""
        return self._value

    def renew(self, refused: str) -> bool:
        """Never: there is no other value."""
        return False


class RotatingSecret:
    """The value of SSM parameter ``parameter``, as of the last time it was refused.

    ``check`` validates every value read (raising a ConfigError naming what is wrong); a
    re-read value it refuses is not used. ``first_read_counts``: the first read starts the
    interval (see the module's docstring). ``on_denied`` hears of a re-read SSM refuses to the
    role (the operator put the new value under a key it may not decrypt), to tell the operator
    (the one line logged of it); a first read raises that error to the caller instead.
    ``unreadable``: the last re-read was so refused (no value has been read since), so a
    refusal of the value still in use is that, already told, not a key to replace.
    """

    def __init__(
        self,
        ssm: Any,
        parameter: str,
        *,
        check: Callable[[str], str] = str,
        clock: Callable[[], float] = time.monotonic,
        reread_interval_s: float = SECRET_REREAD_INTERVAL_S,
        first_read_counts: bool = False,
        on_denied: Callable[[SecretAccessDeniedError], None] | None = None,
    ) -> None:
        self.name = parameter
        self._ssm = ssm
        self._check = check
        self._clock = clock
        self._interval_s = reread_interval_s
        self._first_read_counts = first_read_counts
        self._on_denied = on_denied
        self._value: str | None = None
        self.unreadable = False
        self._last_reread = -math.inf
        self._lock = threading.Lock()

    def current(self) -> str:
        """The value to use (ConfigError or StorageError from ``read_secret`` on first use)."""
        with self._lock:
            if self._value is None:
                self._value = self._first_value()
            return self._value

    def _first_value(self) -> str:
        cached = cached_secret(self.name)  # read earlier, by a start-up check: of unknown age
        if cached is not None:
            try:
                return self._check(cached)
            except ConfigError:
                pass  # unusable when it was read: the operator may have put a usable one since
        value = read_secret(self._ssm, self.name, fresh=True)
        if self._first_read_counts:  # just read: a re-read within the interval finds the same
            self._last_reread = self._clock()
        return self._check(value)

    def renew(self, refused: str) -> bool:
        """``refused`` was refused: whether another value is now current, worth trying instead.
        Reads the parameter again unless it did less than the interval ago."""
        with self._lock:  # calls refused together wait for one read, then use its value
            if self._value is not None and self._value != refused:
                return True  # renewed already, while this call was on its way
            now = self._clock()
            if now - self._last_reread < self._interval_s:
                return False
            self._last_reread = now
            try:
                self._value = self._check(read_secret(self._ssm, self.name, fresh=True))
            except SessionCoreError as exc:  # names the parameter, never a value
                self.unreadable = isinstance(exc, SecretAccessDeniedError)
                if isinstance(exc, SecretAccessDeniedError) and self._on_denied is not None:
                    self._on_denied(exc)  # the caller's line names the setting to fix: no second one
                    return False
                log.warning(
                    "secret.reread_failed",
                    parameter=self.name,
                    error_type=type(exc).__name__,
                    reason=str(exc),
                )
                return False
            self.unreadable = False
            renewed = self._value != refused
            log.info("secret.reread", parameter=self.name, renewed=renewed)
            return renewed
