"""Transcripts read as they stood when a message was sent: a message sent before its chat's
history expired but answered after (a queue backlog, retries, Telegram redelivering) goes on
with the conversation instead of finding it gone. The runtime sets the moment for its turn
(``transcripts_read_as_of``); the transcript store judges whether a head expired at it.

Bounded by what storage still holds: S3 keeps a transcript's objects ``S3_EXPIRY_MARGIN_DAYS``
past its last write's retention, less the ``refresh_after_days`` a snapshot may already be
old, so a head read later than that past its expiry might name objects already deleted.
DynamoDB's TTL sweep may also have deleted the head: the history is then gone all the same."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ._transcript_items import DAY_S, DEFAULT_REFRESH_AFTER_DAYS, S3_EXPIRY_MARGIN_DAYS

# A context variable, not an argument: the SDK calls the store (load, append) with its own
# arguments, from tasks and threads that inherit the turn's context.
_read_as_of: ContextVar[float | None] = ContextVar("transcripts_read_as_of", default=None)


@contextmanager
def transcripts_read_as_of(moment: float | None) -> Iterator[None]:
    """Within the block, a transcript whose head expired after ``moment`` (epoch seconds)
    still reads; None: judged now, as outside it."""
    token = _read_as_of.set(moment)
    try:
        yield
    finally:
        _read_as_of.reset(token)


def longest_read_past_expiry_s(refresh_after_s: float = DEFAULT_REFRESH_AFTER_DAYS * DAY_S) -> float:
    """How long past its expiry a history still reads as of an earlier moment: the bucket's
    margin less the age a snapshot may already have (a day, with the defaults)."""
    return S3_EXPIRY_MARGIN_DAYS * DAY_S - refresh_after_s


def expiry_judged_at(now: float, latest_read_s: float) -> float:
    """The moment a head's expiry is judged at: ``now``, or the block's earlier moment, but
    never more than ``latest_read_s`` before ``now`` (past it, its objects may be gone)."""
    moment = _read_as_of.get()
    if moment is None:
        return now
    return min(now, max(moment, now - latest_read_s))
