"""What Telegram's 429s told the live views of one invocation: until when each chat takes no
more of the bot's progress (its updates, the deletes of its progress messages, and an answered
approval question's edit tried again).

Telegram's limit is the chat's (a group's 20 messages a minute), not one view's: each view of
the chat in the invocation (another topic's turn, the chat's next record) would otherwise spend
a failed call to learn it again, and each failed call is one more the chat is refused.
"""

from __future__ import annotations

import threading


class ChatHolds:
    """Chat id → the time (on the views' monotonic clock) before which its progress waits.
    Thread-safe: a batch's chats run in parallel threads, a group's topics among them."""

    def __init__(self) -> None:
        self._until: dict[int, float] = {}
        self._lock = threading.Lock()

    def hold(self, chat_id: int, until: float) -> None:
        """Hold the chat's progress back until ``until`` (a later hold already known stays)."""
        with self._lock:
            self._until[chat_id] = max(self._until.get(chat_id, until), until)

    def until(self, chat_id: int) -> float:
        """When the chat's progress may go again (-inf: now)."""
        with self._lock:
            return self._until.get(chat_id, float("-inf"))
