"""The progress messages a record's turn left in a group, deleted once the record's outcome is
out; and an approval question whose edit Telegram refused, edited again then (``_question_edit``).

Deleting one may wait for Telegram (a 429, up to a minute, see ``LiveView.cleanup``). What the
user waits for goes first: the answer, and as much the word that the turn failed, which is sent
where the record's failure is handled (``Consumer``), after the turn is over.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from ._timing import PROGRESS_CLEANUP_RESERVE_S, RemainingTimeMs


class LeftToTidy(Protocol):
    """Something the chat still shows that must go, done within ``time_left_s``; never raises."""

    def cleanup(self, *, time_left_s: float) -> None: ...


class ProgressCleanup:
    """``with ProgressCleanup(remaining) as cleanup:`` around the handling of one record;
    ``cleanup.add(view)`` hands it a live view whose progress message is deleted at the block's
    end (or a ``QuestionEdit`` to try again), within the invocation's ``remaining`` time less
    ``PROGRESS_CLEANUP_RESERVE_S``."""

    def __init__(self, remaining: RemainingTimeMs) -> None:
        self._remaining = remaining
        self._views: list[LeftToTidy] = []

    def add(self, view: LeftToTidy) -> None:
        self._views.append(view)

    def __enter__(self) -> ProgressCleanup:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for view in self._views:
            view.cleanup(time_left_s=self._remaining() / 1000 - PROGRESS_CLEANUP_RESERVE_S)
