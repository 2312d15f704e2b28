"""The production turn-event sink: keeps the running turn's progress, publishes it into the
session's ``live`` item at most once per interval, and learns of a stop request on the same
round trip (so a stop reaches the turn within about one interval, outside its FIFO group).

Why this transport: the runtime is invoked synchronously by the consumer, and Lambda response
streaming is not offered to a container run by awslambdaric (Python). The consumer polls the
item while its invoke is in flight; `agentbot dev` runs the same code against moto.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from session_core import (
    MAX_PROGRESS_TEXT,
    LiveTurns,
    SessionCoreError,
    SessionKey,
    ToolActivity,
    TurnProgress,
    get_logger,
    markdown_tail,
)

from ._turn_events import TextBlockEnded, TextWritten, ToolFinished, ToolStarted, TurnEvent, TurnStopped

log = get_logger(__name__)

PUBLISH_INTERVAL_S = 1.0


class LiveProgress:
    """A :class:`TurnEventSink` for one turn. Run :meth:`watch` while the turn runs; it sets
    ``stop_requested`` when the user asks to stop."""

    def __init__(
        self,
        live: LiveTurns,
        key: SessionKey,
        turn_id: int,
        *,
        interval_s: float = PUBLISH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._live = live
        self._key = key
        self._turn_id = turn_id
        self._interval_s = interval_s
        self._clock = clock
        self._blocks: list[str] = [""]
        self._activity: ToolActivity | None = None
        self._seq = 0
        self._published_seq = 0
        self._changed = asyncio.Event()
        self.stop_requested = asyncio.Event()
        self.stopped = False

    @property
    def text(self) -> str:
        """The answer written so far (all of it)."""
        return "\n\n".join(block.strip() for block in self._blocks if block.strip())

    def emit(self, event: TurnEvent) -> None:
        """Take one event of the turn (see ``_turn_events.py``)."""
        if isinstance(event, TextWritten):
            self._blocks[-1] += event.delta
            self._activity = None
        elif isinstance(event, TextBlockEnded):
            if self._blocks[-1].strip():
                self._blocks.append("")
            return  # nothing visible changed
        elif isinstance(event, ToolStarted):
            self._activity = event.activity
        elif isinstance(event, ToolFinished):
            self._activity = None
        elif isinstance(event, TurnStopped):
            self.stopped = True
        self._seq += 1
        self._changed.set()

    def snapshot(self) -> TurnProgress:
        """The progress as it would be published now."""
        text = self.text
        tail = markdown_tail(text, MAX_PROGRESS_TEXT)
        return TurnProgress(
            turn_id=self._turn_id,
            text=tail,
            cut=tail != text,
            activity=self._activity,
            seq=self._seq,
            stopped=self.stopped,
        )

    async def begin(self) -> None:
        """Make this the session's running turn (a stop request now reaches it); sets
        ``stop_requested`` at once when the user stopped it before it began."""
        if await asyncio.to_thread(self._live.begin, self._key, self._turn_id):
            self.stop_requested.set()

    async def stop_asked(self) -> bool:
        """Whether the user asked to stop the turn, read now rather than at the watcher's next
        round (up to an interval later): before a step a stop must keep from starting. A read
        that fails counts as no stop (the watcher still looks)."""
        if not self.stop_requested.is_set():
            try:
                asked = await asyncio.to_thread(self._live.stop_requested, self._key, self._turn_id)
            except SessionCoreError as exc:
                log.warning("turn.live_stop_read_failed", error_type=type(exc).__name__)
                asked = False
            if asked:
                log.info("turn.stop_requested")
                self.stop_requested.set()
        return self.stop_requested.is_set()

    async def end(self) -> None:
        """Publish the final state and mark the turn ended; storage trouble is only logged
        (the answer itself travels in the TurnResult)."""
        try:
            await asyncio.to_thread(self._live.end, self._key, self._turn_id, self.snapshot())
        except Exception as exc:  # progress must never fail a turn
            log.warning("turn.live_end_failed", error_type=type(exc).__name__)

    async def watch(self) -> None:
        """Publish changes (at most one write per interval, at once when the last write is
        older) and look for a stop request on each round trip (a read when nothing changed for
        an interval); returns once a stop was seen."""
        last_write = last_round = -self._interval_s
        while True:
            wait = last_round + self._interval_s - self._clock()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=max(wait, 0.0))
            pause = last_write + self._interval_s - self._clock()
            if pause > 0 and self._changed.is_set():
                await asyncio.sleep(pause)  # changed early: coalesce until the interval ends
            self._changed.clear()
            wrote = self._seq != self._published_seq
            try:
                if wrote:
                    seq = self._seq
                    stop = await asyncio.to_thread(self._live.publish, self._key, self.snapshot())
                    self._published_seq = seq
                else:
                    stop = await asyncio.to_thread(self._live.stop_requested, self._key, self._turn_id)
            except SessionCoreError as exc:  # a storage hiccup: the next round tries again
                log.warning("turn.live_publish_failed", error_type=type(exc).__name__)
                continue
            except Exception as exc:  # a bug here must not fail the turn: progress stops
                log.error("turn.live_publish_crashed", error_type=type(exc).__name__)
                return
            finally:
                # Counted from the end of this request: however slow it was, the next write
                # starts a whole interval later (at most one per interval, as DynamoDB sees it).
                # Only a write holds back the next: the look for a stop as the turn starts
                # held the model's first words back a whole interval.
                last_round = self._clock()
                if wrote:
                    last_write = last_round
            if stop:
                log.info("turn.stop_requested")
                self.stop_requested.set()
                return
