"""A word to the user before a message's last try, when its try before last died.

A message whose handling kills the consumer (out of memory, Lambda's timeout, a crash: no
exception anyone catches) comes back when its visibility runs out, until the queue's redrive
policy dead-letters it after the last receive; the consumer never got to say a word. So the
try before last leaves a mark when it starts (``AttemptMarks.started``) and removes it at every
end the consumer handles: answered, retried, dead-lettered, re-enqueued, misconfigured, shut
out, or an exception the batch caught. Only a try that died leaves it. The last try that finds
it tells the user once (``LAST_TRY_NOTICE``, quoting their message, in its topic), then runs
the work as usual: the answer or the final message of a failure follows; a last try that dies
too leaves the user that word, and the operator the dead-letter alarm.

Requests: none on the earlier receives, so none for a message answered on its first; a PutItem
and a DeleteItem on the try before last; a GetItem on the last. A mark that cannot be written
or read is logged (``attempt_mark_failed``) and the message handled as ever (no word); one that
cannot be removed makes the last try say its word needlessly: it errs towards telling.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from session_core import AttemptMarks, SessionKey, StorageError, get_logger
from telegram_core import InboundMessage

from ._delivery import Delivery
from ._timing import RemainingTimeMs
from ._wording import LAST_TRY_NOTICE

log = get_logger(__name__)


class LastTryWatch:
    """Marks the try before last of each message in ``marks`` (None: off) and, before the
    last try (the ``max_receive_count``-th receive), tells the user through ``delivery``
    when that one died."""

    def __init__(self, *, marks: AttemptMarks | None, delivery: Delivery, max_receive_count: int) -> None:
        self._marks = marks
        self._delivery = delivery
        self._max_receive_count = max_receive_count

    @contextmanager
    def attempt(
        self, receive_count: int, msg: InboundMessage, key: SessionKey, remaining: RemainingTimeMs
    ) -> Iterator[None]:
        """Around one try at ``msg``, its ``receive_count``-th receive. An end by an Exception
        or none removes the try's mark; a BaseException (the process going: interrupted,
        exiting) leaves it, as a death would. The word ends within the invocation's
        ``remaining`` time as a delivery does: a Telegram that holds it must not make the last
        try die too."""
        marks = self._marks
        if marks is None or receive_count < self._max_receive_count - 1:
            yield
            return
        if receive_count >= self._max_receive_count:
            if _left_unfinished(marks, msg, key):
                log.warning("previous_try_died", receive_count=receive_count)
                self._delivery.tell_user_once(msg, key, LAST_TRY_NOTICE, kind="last_try", remaining=remaining)
            yield
            return
        marked = _mark(marks, msg, key)
        try:
            yield
        except Exception:
            if marked:
                _unmark(marks, msg, key)
            raise
        if marked:
            _unmark(marks, msg, key)


# The message matters more than a word about a death: a failing mark never fails the record.


def _mark(marks: AttemptMarks, msg: InboundMessage, key: SessionKey) -> bool:
    try:
        marks.started(key, msg.update_id)
    except StorageError as exc:
        _mark_failed(exc)
        return False
    return True


def _unmark(marks: AttemptMarks, msg: InboundMessage, key: SessionKey) -> None:
    try:
        marks.ended(key, msg.update_id)
    except StorageError as exc:
        _mark_failed(exc)


def _left_unfinished(marks: AttemptMarks, msg: InboundMessage, key: SessionKey) -> bool:
    try:
        return marks.left_unfinished(key, msg.update_id)
    except StorageError as exc:
        _mark_failed(exc)
        return False


def _mark_failed(exc: StorageError) -> None:
    log.warning("attempt_mark_failed", operation=exc.operation, error_code=exc.error_code)
