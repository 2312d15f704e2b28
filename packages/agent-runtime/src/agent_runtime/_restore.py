"""Put a session's transcript where the CLI resumes from: the session's own config dir.

The SDK's resume path (``session_store`` + ``resume``) loads every entry from the store,
re-encodes it into a temporary ``CLAUDE_CONFIG_DIR`` and deletes that copy after the turn,
so every turn, warm or cold, decodes and writes the whole history. Instead the runtime writes
the stored JSON lines unchanged to ``<config_dir>/projects/<project>/<session>.jsonl`` and
answers the SDK's ``load`` of that session with "nothing stored" (``_TimedStore``): the SDK
then starts the CLI with ``--resume`` on the session's own config dir, where the file already
is, and still mirrors every new entry to the store. The file outlives the turn, so a warm
container whose copy is current (the store's revision, the file's size, mtime and ctime are
what the last clean turn left) writes nothing and reads nothing from S3: one Query.

The agent's tools can write the session's config dir, so the file the CLI leaves is never
trusted: after a clean turn it is made the store's own bytes again (a tool that edited an
earlier entry during the turn is undone there; what still matches is read, not rewritten),
and every write refuses links, FIFOs and directories a tool may have planted in its path.

A session's subagent transcripts are put beside it the same way (``_subagent_files``); the
store is still the only source of truth, this is just a faster copy of it.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from session_core import StoredTranscript, TranscriptFile, get_logger

from ._guarded_writes import discard, finish, last_line, matched_in_place, open_partial, write_atomically
from ._subagent_files import (
    EntryState,
    folder_state,
    is_subagent_subpath,
    local_subpaths,
    put_files,
    session_folder,
    stored_files,
)

log = get_logger(__name__)

_TAIL_BLOCK = 64 * 1024
_LOADS_AT_ONCE = 8  # a session's subagent transcripts loaded side by side
_SESSION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class LocalCopy:
    """What a clean turn left in the session's config dir, to recognise it next turn."""

    session_id: str
    revision: str
    size: int
    mtime_ns: int
    ctime_ns: int  # unlike mtime, no process can set it back after a write
    subagents: tuple[EntryState, ...] = ()  # the subagents folder as the turn left it
    subagent_bytes: int = 0


@dataclass(frozen=True)
class Restored:
    """The outcome of a restore: the stored lines, and whether the CLI resumes from the local file."""

    stored: StoredTranscript = field(repr=False)
    local: bool
    written: bool  # False: the file from the last turn was current and kept
    subagent_bytes: int = 0  # the session's subagent transcripts, as stored


def transcript_path(config_dir: str, project_dir: str, session_id: str) -> Path:
    """Where the CLI keeps (and looks for) the session's transcript. ``session_id`` must be one
    plain file name (the CLI makes UUIDs): a name with a path in it never leaves ``config_dir``."""
    if not _FILE_NAME.fullmatch(session_id):
        raise ValueError(f"not a session id: {session_id!r}")
    return Path(config_dir) / "projects" / project_dir / f"{session_id}.jsonl"


def is_session_id(value: object) -> bool:
    """Whether ``value`` is a session id as the CLI makes them (a lowercase UUID)."""
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


class TranscriptRestorer:
    """Restores transcripts into config dirs and remembers which copies are current.

    One per container (its memory of local copies is what makes warm turns cheap). A store
    without ``load_stored``/``known_stored`` (any other ``SessionStore``) leaves every resume to
    the SDK and is only read for the resume point; ``load_for_restore`` is used when present.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self.enabled = all(hasattr(store, verb) for verb in ("load_stored", "known_stored", "list_subkeys"))
        self._copies: dict[str, LocalCopy] = {}
        # the session id and subagent transcripts each slot's restore put (a slot's chat may
        # begin a new session: /new)
        self._subpaths: dict[str, tuple[str, list[str]]] = {}

    async def restore(
        self, slot: str, store_key: dict[str, str], path: Path, *, max_bytes: int | None = None
    ) -> Restored | None:
        """Bring ``path`` (and the session's subagent transcripts beside it) up to the stored
        transcript ``store_key``; None if nothing is stored.

        ``slot`` names the session (one local copy per slot). ``local`` is False only for a
        store that cannot hand out its JSONL: then the SDK materializes it as before. A
        ``TranscriptStore`` raises ``TranscriptTooLargeError`` past ``max_bytes`` before it
        downloads the history.
        """
        copy = self._copies.pop(slot, None)  # valid again only once a clean turn says so
        if not self.enabled:
            entries = await self.store.load(store_key)
            if not entries:
                return None
            jsonl = b"".join(msgspec.json.encode(entry) + b"\n" for entry in entries)
            return Restored(
                stored=StoredTranscript(revision="", count=len(entries), jsonl=(jsonl,)),
                local=False,
                written=False,
            )
        if copy is not None:  # likely current: one Query says so
            stored = await self.store.load_stored(store_key, max_bytes=max_bytes)
            if stored is not None and copy.revision == stored.revision and _unchanged(path, copy):
                return Restored(stored=stored, local=True, written=False, subagent_bytes=copy.subagent_bytes)
            subkeys = await self.store.list_subkeys(store_key)
        elif hasattr(self.store, "load_for_restore"):  # the index item names the snapshot early
            return await self._restore_cold(slot, store_key, path, max_bytes)
        else:  # subagent transcripts are listed while the transcript loads: one round trip
            stored, subkeys = await asyncio.gather(
                self.store.load_stored(store_key), self.store.list_subkeys(store_key)
            )
        if stored is None or not stored.count:
            return None
        await asyncio.to_thread(write_atomically, path, stored.jsonl)  # the lease renewer keeps running
        subagent_bytes = await self._put_subagents(slot, store_key, path, subkeys)
        return Restored(stored=stored, local=True, written=True, subagent_bytes=subagent_bytes)

    async def _restore_cold(
        self, slot: str, store_key: dict[str, str], path: Path, max_bytes: int | None
    ) -> Restored | None:
        """A restore with nothing of the session in this container: the store writes the
        snapshot's JSONL into the file while it downloads; the tail follows once it returns."""
        partial, fd = open_partial(path)  # a few syscalls; no await between open and try
        file = TranscriptFile(fd)
        try:
            stored, subkeys = await self.store.load_for_restore(store_key, max_bytes=max_bytes, into=file)
        except BaseException:
            file.close()  # a download still running writes nothing more
            discard(partial, fd)
            raise
        file.close()
        if stored is None or not stored.count:
            discard(partial, fd)
            return None
        await asyncio.to_thread(finish, partial, fd, path, stored.jsonl, file.written)
        subagent_bytes = await self._put_subagents(slot, store_key, path, subkeys)
        return Restored(stored=stored, local=True, written=True, subagent_bytes=subagent_bytes)

    async def _put_subagents(
        self, slot: str, store_key: dict[str, str], path: Path, subkeys: list[str]
    ) -> int:
        """Put the session's subagent transcripts ``subkeys`` beside ``path``, loaded a few at
        a time (one that expired on its own is left out); their stored bytes."""
        subpaths = [subpath for subpath in subkeys if is_subagent_subpath(subpath)]
        if len(subpaths) < len(subkeys):
            log.warning("restore.subpath_skipped", count=len(subkeys) - len(subpaths))
        room = asyncio.Semaphore(_LOADS_AT_ONCE)

        async def load(subpath: str) -> StoredTranscript | None:
            async with room:
                stored: StoredTranscript | None = await self.store.load_stored(
                    {**store_key, "subpath": subpath}
                )
                return stored

        loaded = await asyncio.gather(*(load(subpath) for subpath in subpaths))
        pairs = zip(subpaths, loaded, strict=True)
        found = {subpath: stored for subpath, stored in pairs if stored is not None}
        await asyncio.to_thread(put_files, session_folder(path), stored_files(found))
        # Only those put: one that expired stays listed, and the store (rightly) knows it not.
        self._subpaths[slot] = (store_key["session_id"], list(found))
        return sum(stored.size for stored in found.values())

    def remember(self, slot: str, store_key: dict[str, str], path: Path) -> bool:
        """After a clean turn: make the files what the store holds and note them as current.

        The store's last entry must be the file's last entry (the SDK's final flush can fail
        after the last message was read); otherwise the next turn restores from the store.
        The file is then made the stored bytes, so nothing a tool changed in it during the
        turn reaches the next one: what already matches them is read, not written again
        (reading 110 MB costs a third of writing it), and the rest is written. So are the
        subagent transcripts: every one the store knows must be one this store has seen
        (the restore's, or one the turn mirrored); a file the store does not know (a tool's)
        leaves the copy not current, and the next restore removes it.
        """
        if not self.enabled:
            return False
        stored = self.store.known_stored(store_key)
        newest = stored.last_line() if stored is not None else None
        last = _decoded(newest) if newest is not None else None
        # The CLI may encode the entry longer (escapes): past that, the file is not trusted.
        limit = 8 * len(newest or b"") + _TAIL_BLOCK
        if stored is None or last is None or last != _decoded(last_line(path, limit=limit)):
            log.info("restore.local_copy_not_current")
            return False
        session = session_folder(path)
        subagents = self._known_subagents(slot, store_key, session)
        if subagents is None:
            log.info("restore.local_copy_not_current", why="subagent")
            return False
        try:
            if not matched_in_place(path, stored.jsonl):
                write_atomically(path, stored.jsonl)
            info = path.stat()
            folder = put_files(session, stored_files(subagents))
        except OSError:
            return False
        self._copies[slot] = LocalCopy(
            session_id=store_key["session_id"],
            revision=stored.revision,
            size=info.st_size,
            mtime_ns=info.st_mtime_ns,
            ctime_ns=info.st_ctime_ns,
            subagents=folder,
            subagent_bytes=sum(transcript.size for transcript in subagents.values()),
        )
        return True

    def _known_subagents(
        self, slot: str, store_key: dict[str, str], session: Path
    ) -> dict[str, StoredTranscript] | None:
        """The session's subagent transcripts as this store last saw them: those this session's
        restore put and those in the folder now. None if the store knows one of them not (or
        not any more: it may have let it go to keep its cache small), or a tool made the
        folder unknowable (``local_subpaths``)."""
        local = local_subpaths(session)
        if local is None:
            return None
        session_id, put = self._subpaths.get(slot, ("", []))
        wanted = set(put if session_id == store_key["session_id"] else []) | local
        known: dict[str, StoredTranscript] = {}
        for subpath in sorted(wanted):
            transcript = self.store.known_stored({**store_key, "subpath": subpath})
            if transcript is None or not is_subagent_subpath(subpath):
                return None
            known[subpath] = transcript
        self._subpaths[slot] = (store_key["session_id"], list(known))
        return known

    def forget(self, slot: str) -> None:
        """The local copy may differ from the store (a failed turn): restore it next time."""
        self._copies.pop(slot, None)


def _unchanged(path: Path, copy: LocalCopy) -> bool:
    """Whether the file, and the subagents folder beside it, are as the last clean turn left them."""
    if folder_state(session_folder(path)) != copy.subagents:
        return False
    try:
        info = os.lstat(path)  # a link put in its place is not the file this turn left
    except OSError:
        return False
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_size == copy.size
        and (info.st_mtime_ns, info.st_ctime_ns) == (copy.mtime_ns, copy.ctime_ns)
    )


_entry_decoder = msgspec.json.Decoder(dict[str, Any])


def _decoded(line: bytes) -> dict[str, Any] | None:
    # Compared decoded: the store re-encodes entries, so equal entries need not be equal bytes.
    try:
        return _entry_decoder.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return None
