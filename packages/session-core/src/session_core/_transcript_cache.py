"""The transcript store's per-process cache of transcripts as stored (bounded in bytes, LRU),
the per-transcript locks and the monotonic mtime stamps."""

from __future__ import annotations

import threading

from ._logging import get_logger
from ._transcript_calls import StorageCalls
from ._transcript_format import (
    Location,
)
from ._transcript_items import (
    _State,
)

_log = get_logger("session_core._transcript_store")


class StateCache(StorageCalls):
    def _key_lock(self, location: Location) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(location.pk, threading.Lock())

    def _cached(self, location: Location) -> _State | None:
        with self._lock:
            state = self._cache.get(location.pk)
            if state is not None:
                self._cache.move_to_end(location.pk)
            return state

    def _remember(self, location: Location, state: _State) -> None:
        with self._lock:
            old = self._cache.pop(location.pk, None)
            if old is not None:
                self._cache_bytes -= old.nbytes
            self._cache[location.pk] = state
            self._cache_bytes += state.nbytes
            while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                self._cache_bytes -= evicted.nbytes

    def _forget(self, location: Location) -> None:
        with self._lock:
            old = self._cache.pop(location.pk, None)
            if old is not None:
                self._cache_bytes -= old.nbytes

    def _next_mtime_ms(self, now: float) -> int:
        # Strictly increasing within the process so back-to-back appends differ.
        with self._lock:
            self._last_mtime_ms = max(int(now * 1000), self._last_mtime_ms + 1)
            return self._last_mtime_ms
