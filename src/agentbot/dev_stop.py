"""How `agentbot dev` stops, in bounded time and with no process of its tree left behind.

- Ctrl-C once: stop taking messages, let the current turn finish, then shut down.
- Ctrl-C again (or SIGTERM, which a service manager follows with SIGKILL): abort. A second
  SIGINT within ``SAME_PRESS_S`` of the first is the same press: `uv run` passes on a SIGINT
  sent to the whole process group when it has no terminal (piped input), 200 ms later, so this
  process gets it twice. Every process below this one (function workers, the agent's CLI, MCP
  servers, tools) is killed at once, then the stack is closed; whatever is still closing after
  a few seconds is cut.
- A Ctrl-C while the stack is still starting stops the start (KeyboardInterrupt); a second
  one then aborts at once.
- The terminal's output closing (``agentbot dev | head``) aborts as SIGTERM does: nobody can
  read a reply any more. The exit status is then 141, as for SIGPIPE.
This process is a child subreaper, so a process whose parent was killed is re-parented here
(not to init) and is still found and killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from local_stack import kill_descendants
from session_core import become_subreaper

STOPPING_MESSAGE = "stopping (finishing the current turn, Ctrl-C again to abort)"
# uv waits 200 ms before it passes a press on (0.20 s measured; more on a busy machine); a
# finger's second press within the window counts as the first, and a third one aborts.
SAME_PRESS_S = 0.5
ABORT_EXIT_CODE = 130  # as for Ctrl-C
SIGTERM_EXIT_CODE = 143  # 128 + SIGTERM
OUTPUT_CLOSED_EXIT_CODE = 141  # 128 + SIGPIPE


class StopRequests:
    """What the user asked for so far: nothing, finish (one Ctrl-C) or abort.

    The handlers run on the main thread between two of its bytecodes: the main thread must
    never wait on these Events (it polls ``requested`` / ``is_set()``, which take no lock),
    or a handler's ``set()`` would wait for a lock the interrupted thread holds."""

    def __init__(self, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._print = say
        self._clock = clock
        self._last_press_at: float | None = None
        self.finish = threading.Event()
        self.abort = threading.Event()
        self.exit_code = ABORT_EXIT_CODE
        self._starting = True
        self._output_closed = False

    @property
    def requested(self) -> bool:
        """True once the user asked to stop, either way."""
        return self.finish.is_set() or self.abort.is_set()

    def started(self) -> None:
        """From now on a first Ctrl-C finishes the current turn instead of stopping the start."""
        self._starting = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequests]:
        """Handle SIGINT and SIGTERM for the block; the previous handlers come back after."""
        with contextlib.suppress(OSError):  # not Linux: orphans go to init, as before
            become_subreaper()
        previous_int = signal.signal(signal.SIGINT, self._on_sigint)
        previous_term = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)

    def _say(self, text: str) -> None:
        # A handler runs between two bytecodes of the main thread, which may be writing to
        # the same stream: a reentrant write is refused, and the line is not worth a crash.
        with contextlib.suppress(RuntimeError):
            self._print(text)

    def _on_sigint(self, _signum: int, _frame: Any) -> None:
        now = self._clock()
        if self._last_press_at is not None and now - self._last_press_at < SAME_PRESS_S:
            return  # the same press, passed on by `uv run`
        self._last_press_at = now
        if self.requested:
            self._abort("aborting (Ctrl-C again)")
        elif self._starting:
            self.abort.set()
            raise KeyboardInterrupt
        else:
            self.finish.set()
            self._say(STOPPING_MESSAGE)

    def output_closed(self) -> None:
        """The terminal's output is gone (any thread): abort, through the SIGTERM handler,
        which runs on the main thread whatever it is waiting for."""
        if not self._output_closed:
            self._output_closed = True
            os.kill(os.getpid(), signal.SIGTERM)

    def _on_sigterm(self, _signum: int, _frame: Any) -> None:
        self.exit_code = OUTPUT_CLOSED_EXIT_CODE if self._output_closed else SIGTERM_EXIT_CODE
        if self._starting and not self.requested:
            self.abort.set()
            raise KeyboardInterrupt
        self._abort("terminated (SIGTERM): aborting")

    def _abort(self, why: str) -> None:
        if self.abort.is_set() and not self._starting:
            # Asked to abort while already aborting: nothing is worth waiting for any more.
            self._say("aborted")
            kill_descendants(os.getpid())
            leave(self.exit_code)
        self.abort.set()
        self._say(why)
        # Now, whatever the main thread is doing: no turn, tool or server outlives this.
        kill_descendants(os.getpid())
        if self._starting:  # the start is unwinding already; do not wait for it
            leave(self.exit_code)


class TerminalStream:
    """A terminal stream whose reader may go away: the first write that finds it closed
    (BrokenPipeError) calls ``on_closed``, and every write after it is dropped."""

    def __init__(self, stream: Any, on_closed: Callable[[], None]) -> None:
        self._stream = stream
        self._on_closed = on_closed
        self._closed = False

    def write(self, text: str) -> int:
        return self._guarded(lambda: self._stream.write(text)) or len(text)

    def flush(self) -> None:
        self._guarded(self._stream.flush)

    def _guarded(self, call: Callable[[], Any]) -> Any:
        if self._closed:
            return None
        try:
            return call()
        except BrokenPipeError:
            self._closed = True
            self._on_closed()
            return None

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self._stream, name)


def close_within(close: Callable[[], object], seconds: float) -> bool:
    """Run ``close`` (an ExitStack's close) in a thread; True if it ended within ``seconds``.
    Anything it raises goes to ``sys.stderr``, which is the log file by then."""

    def run() -> None:
        try:
            close()
        except BaseException:  # reported, never shown as a traceback on the terminal
            import traceback

            traceback.print_exc(file=sys.stderr)

    thread = threading.Thread(target=run, name="agentbot-dev-close", daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def leave(code: int) -> NoReturn:
    """Exit now with ``code`` after flushing the terminal's streams (no interpreter teardown)."""
    for stream in (sys.stdout, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    os._exit(code)
