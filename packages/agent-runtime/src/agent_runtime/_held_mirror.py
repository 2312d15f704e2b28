"""The session store as one run's SDK sees it: the transcript entries the CLI mirrors are held
here and sent to the store in one append per transcript when the runtime says so (before a
tool call runs, at a result, at the run's end), not only when the SDK's own batch is flushed.

The SDK flushes its batch at a result or past 500 entries / 1 MiB, and offers no flush in
between; a runtime killed while a tool ran (out of memory, its sandbox ended) lost every entry
of the turn, and its retry ran every call again. So the SDK runs in its "eager" mode (each
frame handed over at once, see ``_options``) and the batching is done here instead: the same
number of appends as before, plus one per tool call that has something new to store."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from session_core import get_logger

from ._mcp_tools_added import tools_added
from ._refused_calls import refused_call
from ._timed_store import TimedStore

log = get_logger("agent_runtime._turn")

# The SDK's own bounds on a batch it holds: memory stays flat in a long run between sends.
_MAX_HELD_ENTRIES = 500
_MAX_HELD_BYTES = 1 << 20
# Tries of one append, as the SDK's mirror tries (a brief outage passes unnoticed); the store
# skips entries it holds already, so a try whose reply was lost stores nothing twice.
_SEND_PAUSES_S = (0.2, 0.8)


class HeldMirror:
    """Holds what the SDK appends until ``send``; ``on_failed_send`` is called for each
    transcript whose append failed every try (its entries are dropped: the store is behind,
    and the runtime catches it up from the CLI's file, as after the SDK's MirrorErrorMessage).
    Until the runtime has caught it up (``catching_up``), nothing more of it is sent: appended
    after the gap, later entries would sit before the missing ones in the store, and the
    catch-up replays the file in order anyway. Dropping them loses nothing: the CLI mirrors an
    entry only after writing it to its file, so the replay reads every one dropped before it."""

    def __init__(
        self,
        store: TimedStore,
        on_failed_send: Callable[[], None],
        on_refused: Callable[[str], None] = lambda call_id: None,
        on_tools_added: Callable[[list[str]], None] = lambda names: None,
    ) -> None:
        self._store = store
        self._on_failed_send = on_failed_send
        # Told the id of each call an entry records as refused before it ran (``_refused_calls``).
        self._on_refused = on_refused
        # Told the tools an entry records as just become available (``_mcp_tools_added``).
        self._on_tools_added = on_tools_added
        self._held: list[tuple[Mapping[str, Any], list[Any]]] = []
        self._held_entries = 0
        self._held_bytes = 0
        self._sending = asyncio.Lock()
        self._calls_seen: set[str] = set()
        self._waiting: dict[str, asyncio.Event] = {}
        self._behind: set[tuple[Any, ...]] = set()  # transcripts the store lacks entries of

    async def append(self, key: Mapping[str, Any], entries: list[Any]) -> None:
        self._held.append((key, entries))
        self._held_entries += len(entries)
        self._held_bytes += len(json.dumps(entries))
        for call_id in _tool_calls(entries):
            self._calls_seen.add(call_id)
            waiting = self._waiting.get(call_id)
            if waiting is not None:
                waiting.set()
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            refused = refused_call(entry)
            if refused is not None:
                self._on_refused(refused)
            added = tools_added(entry)
            if added:
                self._on_tools_added(added)
        if self._held_entries > _MAX_HELD_ENTRIES or self._held_bytes > _MAX_HELD_BYTES:
            await self.send()

    async def send(self) -> bool:
        """Append what is held, in the order it came, one append per transcript; never raises.
        False when the store lacks some of what was held (now or after an earlier failure)."""
        async with self._sending:
            held, self._held = self._held, []
            self._held_entries = self._held_bytes = 0
            by_transcript: dict[tuple[Any, ...], tuple[Mapping[str, Any], list[Any]]] = {}
            for key, entries in held:
                name = (key.get("project_key"), key.get("session_id"), key.get("subpath"))
                by_transcript.setdefault(name, (key, []))[1].extend(entries)
            for name, (key, entries) in by_transcript.items():
                if name in self._behind or not entries:
                    continue
                if not await self._sent(key, entries):
                    self._behind.add(name)
                    self._on_failed_send()
            return not self._behind

    @contextlib.asynccontextmanager
    async def catching_up(self) -> AsyncIterator[None]:
        """Around the runtime's replay of the CLI's file into the store: when it ends without
        error, the store holds the whole transcript again. Sends wait for it: what they hold
        may have been written after the replay read the file, and skipped as behind, it would
        be in neither (the CLI goes on writing when a background subagent runs)."""
        async with self._sending:
            yield
            self._behind.clear()

    async def _sent(self, key: Mapping[str, Any], entries: list[Any]) -> bool:
        for pause in (*_SEND_PAUSES_S, None):
            try:
                await self._store.append(key, entries)
                return True
            except Exception as exc:  # as the SDK's mirror: the agent carries on regardless
                log.warning("turn.mirror_error", error_type=type(exc).__name__, retried=pause is not None)
                if pause is not None:
                    await asyncio.sleep(pause)
        return False

    async def wait_for_call(self, call_id: str, timeout_s: float) -> bool:
        """Wait until the CLI has mirrored the entry that makes tool call ``call_id`` (it asks
        the PreToolUse hook before it writes that entry); False when it did not in time."""
        if call_id in self._calls_seen:
            return True
        waiting = self._waiting.setdefault(call_id, asyncio.Event())
        try:
            await asyncio.wait_for(waiting.wait(), timeout_s)
        except TimeoutError:
            return False
        finally:
            self._waiting.pop(call_id, None)
        return True

    # The other verbs go straight to the store.
    async def load(self, key: Any) -> Any:
        return await self._store.load(key)

    async def list_subkeys(self, key: Any) -> Any:
        return await self._store.list_subkeys(key)

    async def list_sessions(self, project_key: str) -> Any:
        return await self._store.list_sessions(project_key)

    async def delete(self, key: Any) -> None:
        await self._store.delete(key)

    async def list_session_summaries(self, project_key: str) -> Any:
        return await self._store.list_session_summaries(project_key)


def _tool_calls(entries: list[Any]) -> list[str]:
    """The ids of the tool calls the assistant entries among ``entries`` make."""
    ids = []
    for entry in entries:
        message = entry.get("message") if isinstance(entry, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            call_id = block.get("id") if isinstance(block, dict) and block.get("type") == "tool_use" else None
            if isinstance(call_id, str):
                ids.append(call_id)
    return ids
