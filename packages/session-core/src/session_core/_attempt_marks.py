"""Marks of a queue message's try before last, so that its last try knows whether that one died.

A message whose handling kills the consumer (out of memory, Lambda's timeout, a crash: nothing
the consumer can catch) comes back after its visibility timeout until the queue's redrive
policy dead-letters it, and the consumer never got to say a word. The consumer marks the start
of the try before last (``started``) and removes the mark at every end of that try it handles
(``ended``: answered, retried, dead-lettered, re-enqueued...); a mark its last try finds
(``left_unfinished``) was left by a try that died. Only those two tries touch the mark: the
first tries of every message cost nothing here.

One item per update (``pk`` ``attempt|<session key>|<update_id>``, ``sk`` ``started``), holding
``started_at`` and the TTL: it matters for the minutes between two tries, so a day's retention
is plenty (a mark whose last try never came, or that the last try read, expires with it).
"""

from __future__ import annotations

from ._dynamo_table import TableStore, check_update_id, number
from ._keys import SessionKey

_SK = "started"


class AttemptMarks(TableStore):
    """The marks in the registry's table; ``dynamodb`` is a boto3 client, ``clock`` epoch seconds.
    Each verb is one request and raises StorageError when it fails."""

    _label = "attempt_marks"

    def started(self, key: SessionKey, update_id: int) -> None:
        """Mark that a try at ``update_id`` started (one PutItem)."""
        now = self._table.clock()
        self._table.put(
            "started",
            attempt_pk(key, update_id),
            _SK,
            {"started_at": number(int(now)), "expires_at": number(self._table.expires_at(now))},
        )

    def ended(self, key: SessionKey, update_id: int) -> None:
        """That try ended in a way its consumer handled: remove the mark (one DeleteItem)."""
        self._table.delete("ended", attempt_pk(key, update_id), _SK)

    def left_unfinished(self, key: SessionKey, update_id: int) -> bool:
        """Whether a try at ``update_id`` started and never ended (one strongly consistent GetItem)."""
        return self._table.get("left_unfinished", attempt_pk(key, update_id), _SK) is not None


def attempt_pk(key: SessionKey, update_id: int) -> str:
    """The partition key of the mark of a try at ``update_id``."""
    return f"attempt|{key.canonical}|{check_update_id(update_id)}"
