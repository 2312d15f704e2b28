"""The transcript store as one turn's SDK sees it: scoped to the running session (every
project key the SDK passes becomes the session's), timed (restore and persist seconds for
the turn's log), and answering "nothing stored" for the copy the runtime restored itself."""

from __future__ import annotations

import time
from typing import Any

from ._collaborators import TranscriptStoreVerbs


class TimedStore:
    """Delegates to the transcript store for the running turn's session (``scope``: every
    project key the SDK passes becomes the session's) and adds up the time spent in it."""

    def __init__(self, inner: TranscriptStoreVerbs) -> None:
        self.inner = inner
        self.scope: str | None = None
        # The session the runtime restored into its config dir: the SDK must not copy it again.
        self.restored_locally: str | None = None
        self.load_s = 0.0
        self.append_s = 0.0
        self.loads = 0
        self.appends = 0

    def reset(self) -> None:
        self.load_s = self.append_s = 0.0
        self.loads = self.appends = 0
        self.restored_locally = None

    async def load(self, key: Any) -> Any:
        if key.get("subpath") is None and key.get("session_id") == self.restored_locally:
            # "Nothing stored": the SDK then resumes the CLI from the file already in place.
            return None
        started = time.perf_counter()
        try:
            return await self.inner.load(self._scoped(key))
        finally:
            self.load_s += time.perf_counter() - started
            self.loads += 1

    async def append(self, key: Any, entries: Any) -> None:
        started = time.perf_counter()
        try:
            await self.inner.append(self._scoped(key), entries)
        finally:
            self.append_s += time.perf_counter() - started
            self.appends += 1

    async def list_subkeys(self, key: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self.inner.list_subkeys(self._scoped(key))
        finally:
            self.load_s += time.perf_counter() - started

    async def list_sessions(self, project_key: str) -> Any:
        return await self.inner.list_sessions(self.scope or project_key)

    async def delete(self, key: Any) -> None:
        await self.inner.delete(self._scoped(key))

    async def list_session_summaries(self, project_key: str) -> Any:
        return await self.inner.list_session_summaries(self.scope or project_key)

    def _scoped(self, key: Any) -> Any:
        return key if self.scope is None else {**key, "project_key": self.scope}
