"""Reading the project's session index (listings, subkeys) and restoring a session from one round trip."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ._errors import SessionCoreError
from ._logging import get_logger
from ._transcript_delete import Deleting
from ._transcript_file import TranscriptFile
from ._transcript_format import (
    Location,
    StoredTranscript,
)
from ._transcript_items import (
    _ReadCancelled,
    _SnapshotMissing,
    size_named_by_index,
    snapshot_named_by_index,
)
from ._transcript_load import EarlyRead, _SnapshotRead

_log = get_logger("session_core._transcript_store")


class Listings(Deleting):
    def _load_for_restore_locked(
        self, location: Location, max_bytes: int | None, into: TranscriptFile | None = None
    ) -> tuple[StoredTranscript | None, list[str]]:
        """``load_stored`` with the session's subpaths, from one round trip: the index item
        (read beside the Query) names the snapshot, whose download starts before the Query
        returns. A cached transcript only catches up. Past ``max_bytes`` (the index item says
        so too) the snapshot is not read, nor anything cached (``TranscriptTooLargeError``)."""
        pool = ThreadPoolExecutor(2)
        early = None
        try:
            with self._key_lock(location):
                index = pool.submit(self._get_index_item, location)
                if location.subpath is None and self._cached(location) is None:
                    cancel = threading.Event()
                    read = pool.submit(self._read_named_snapshot, location, index, cancel, max_bytes, into)
                    early = EarlyRead(index, read, cancel, into)
                state = self._refresh_cache(location, early, max_bytes)
            subpaths = self._subpaths(index.result())
        finally:
            if early is not None:
                early.cancel.set()  # unused (no snapshot, or another one): it stops on its own
            pool.shutdown(wait=False)  # and nobody waits for it
        return (None if state is None else state.stored()), subpaths

    def _read_named_snapshot(
        self,
        location: Location,
        index: Future[dict[str, Any] | None],
        cancel: threading.Event,
        max_bytes: int | None,
        into: TranscriptFile | None = None,
    ) -> _SnapshotRead | None:
        item = index.result()
        ref = snapshot_named_by_index(item) if item is not None and self._live(item) else None
        if ref is None or not ref.key.startswith(location.s3_prefix):
            return None  # only this transcript's own objects are worth fetching early
        if max_bytes is not None and ref.raw_size is not None:  # else the load refuses nothing
            size = max(ref.raw_size, size_named_by_index(item) or 0)  # an older item: the snapshot's
            if size > max_bytes:
                return None  # the load will refuse it: not worth the download
        try:
            return self._read_snapshot(ref, cancel, into)
        except (SessionCoreError, _SnapshotMissing, _ReadCancelled):
            return None  # stale, damaged or unused: the head's own read meets (and reports) it

    def _subpaths(self, index_item: dict[str, Any] | None) -> list[str]:
        if index_item is None or not self._live(index_item):
            return []
        return sorted(index_item.get("subpaths", {}).get("SS", []))

    def _query_index(self, pk: str, projection: str) -> list[dict[str, Any]]:
        return self._query(pk, projection=projection)
