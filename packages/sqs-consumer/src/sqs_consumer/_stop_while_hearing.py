"""A Stop pressed while a turn's recordings are written down. Amazon Transcribe takes seconds to
minutes, and the runtime (which looks for stops once it runs) is invoked only after: the turn
is marked as the session's coming one first (``LiveTurns.expect``, as the live view marks it
before the runtime starts), so the producer's /stop finds it ("Stopping…") and the wait for
Transcribe, asking once a look, ends with it.
"""

from __future__ import annotations

from collections.abc import Collection
from types import TracebackType

from session_core import SessionKey, get_logger

from ._live_view import ProgressSource

log = get_logger(__name__)


class StopWhileHearing:
    """``with StopWhileHearing(live_turns, key, turn_id, hears=...) as hearing:`` marks turn
    ``turn_id`` expected while its recordings are fetched and written down (only when it
    ``hears`` any: another turn costs no request); ``hearing.requested()`` answers whether a
    stop came for it. Leaving the block ends the mark (a later /stop finds nothing running)
    unless ``hand_over()`` gave the turn to its live view, which expects it again, keeping a
    stop, and ends it. Storage trouble is only logged: the turn runs, as it would unstoppable
    until the runtime begins."""

    def __init__(
        self,
        live_turns: ProgressSource | None,
        key: SessionKey,
        turn_id: int,
        *,
        hears: bool,
        message_ids: Collection[int] = (),
    ) -> None:
        self._live_turns = live_turns if hears else None
        self._key = key
        self._turn_id = turn_id
        # An edit of one of the messages it answers into /stop stops it before a job is paid.
        self._message_ids = message_ids
        self._handed_over = False

    def __enter__(self) -> StopWhileHearing:
        if self._live_turns is not None:
            try:
                self._live_turns.expect(self._key, self._turn_id, message_ids=self._message_ids)
            except Exception as exc:
                log.info("live_item_not_written", error=type(exc).__name__)
                self._live_turns = None  # nothing marked: nothing to ask or end
        return self

    def requested(self) -> bool:
        """Whether the turn was asked to stop (one GetItem)."""
        if self._live_turns is None:
            return False
        try:
            return self._live_turns.stop_requested(self._key, self._turn_id)
        except Exception as exc:  # the next look asks again
            log.info("stop_not_read", error=type(exc).__name__)
            return False

    def hand_over(self) -> None:
        """The turn goes on to its live view: its mark is the view's to end."""
        self._handed_over = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live_turns is None or self._handed_over:
            return
        try:
            self._live_turns.end(self._key, self._turn_id)
        except Exception as error:  # the next turn's runtime replaces it as it begins
            log.info("live_item_not_written", error=type(error).__name__)
