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

Sessions with subagent transcripts keep the SDK's own resume path (it materializes those
too); the store is still the only source of truth, this is just a faster copy of it.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from session_core import StoredTranscript, TranscriptFile, get_logger

log = get_logger(__name__)

_TAIL_BLOCK = 64 * 1024
_SESSION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_COMPARE_WINDOW = 8 * 1024 * 1024  # snapshot fragments are ~2.5 MB: most compare whole
_FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h, a long-sized read
# FS_SYNC_FL, FS_IMMUTABLE_FL, FS_APPEND_FL, FS_JOURNAL_DATA_FL, FS_DIRSYNC_FL
_WRITE_FLAGS = 0x8 | 0x10 | 0x20 | 0x4000 | 0x10000


@dataclass(frozen=True)
class LocalCopy:
    """What a clean turn left in the session's config dir, to recognise it next turn."""

    session_id: str
    revision: str
    size: int
    mtime_ns: int
    ctime_ns: int  # unlike mtime, no process can set it back after a write


@dataclass(frozen=True)
class Restored:
    """The outcome of a restore: the stored lines, and whether the CLI resumes from the local file."""

    stored: StoredTranscript = field(repr=False)
    local: bool
    written: bool  # False: the file from the last turn was current and kept


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

    async def restore(
        self, slot: str, store_key: dict[str, str], path: Path, *, max_bytes: int | None = None
    ) -> Restored | None:
        """Bring ``path`` up to the stored transcript ``store_key``; None if nothing is stored.

        ``slot`` names the session (one local copy per slot). ``local`` is False when the
        session has subagent transcripts: then the SDK materializes it as before. A
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
                return Restored(stored=stored, local=True, written=False)
            subkeys = await self.store.list_subkeys(store_key)
        elif hasattr(self.store, "load_for_restore"):  # the index item names the snapshot early
            return await self._restore_cold(store_key, path, max_bytes)
        else:  # subagent transcripts are listed while the transcript loads: one round trip
            stored, subkeys = await asyncio.gather(
                self.store.load_stored(store_key), self.store.list_subkeys(store_key)
            )
        if stored is None or not stored.count or subkeys:
            return _not_written(stored)
        await asyncio.to_thread(_write_atomically, path, stored.jsonl)  # the lease renewer keeps running
        return Restored(stored=stored, local=True, written=True)

    async def _restore_cold(
        self, store_key: dict[str, str], path: Path, max_bytes: int | None
    ) -> Restored | None:
        """A restore with nothing of the session in this container: the store writes the
        snapshot's JSONL into the file while it downloads; the tail follows once it returns."""
        partial, fd = _open_partial(path)  # a few syscalls; no await between open and try
        file = TranscriptFile(fd)
        try:
            stored, subkeys = await self.store.load_for_restore(store_key, max_bytes=max_bytes, into=file)
        except BaseException:
            file.close()  # a download still running writes nothing more
            _discard(partial, fd)
            raise
        file.close()
        if stored is None or not stored.count or subkeys:
            _discard(partial, fd)
            return _not_written(stored)
        await asyncio.to_thread(_finish, partial, fd, path, stored.jsonl, file.written)
        return Restored(stored=stored, local=True, written=True)

    def remember(self, slot: str, store_key: dict[str, str], path: Path) -> bool:
        """After a clean turn: make the file what the store holds and note it as current.

        The store's last entry must be the file's last entry (the SDK's final flush can fail
        after the last message was read); otherwise the next turn restores from the store.
        The file is then made the stored bytes, so nothing a tool changed in it during the
        turn reaches the next one: what already matches them is read, not written again
        (reading 110 MB costs a third of writing it), and the rest is written.
        """
        if not self.enabled:
            return False
        stored = self.store.known_stored(store_key)
        newest = stored.last_line() if stored is not None else None
        last = _decoded(newest) if newest is not None else None
        # The CLI may encode the entry longer (escapes): past that, the file is not trusted.
        limit = 8 * len(newest or b"") + _TAIL_BLOCK
        if stored is None or last is None or last != _decoded(_last_line(path, limit=limit)):
            log.info("restore.local_copy_not_current")
            return False
        try:
            if not _matched_in_place(path, stored.jsonl):
                _write_atomically(path, stored.jsonl)
            info = path.stat()
        except OSError:
            return False
        self._copies[slot] = LocalCopy(
            session_id=store_key["session_id"],
            revision=stored.revision,
            size=info.st_size,
            mtime_ns=info.st_mtime_ns,
            ctime_ns=info.st_ctime_ns,
        )
        return True

    def forget(self, slot: str) -> None:
        """The local copy may differ from the store (a failed turn): restore it next time."""
        self._copies.pop(slot, None)


def _not_written(stored: StoredTranscript | None) -> Restored | None:
    """No file: nothing stored (None), or subagent transcripts the SDK materializes itself."""
    if stored is None or not stored.count:
        return None
    return Restored(stored=stored, local=False, written=False)


def _unchanged(path: Path, copy: LocalCopy) -> bool:
    try:
        info = os.lstat(path)  # a link put in its place is not the file this turn left
    except OSError:
        return False
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_size == copy.size
        and (info.st_mtime_ns, info.st_ctime_ns) == (copy.mtime_ns, copy.ctime_ns)
    )


def _real_directories(path: Path, levels: int) -> None:
    """Make the ``levels`` directories above ``path`` real directories: a symlink or any other
    file a tool put in their place is removed first (the runtime must not write through it)."""
    for directory in reversed(path.parents[:levels]):
        try:
            mode = os.lstat(directory).st_mode
        except FileNotFoundError:
            directory.mkdir(mode=0o700)
            continue
        if not stat.S_ISDIR(mode):
            directory.unlink()
            directory.mkdir(mode=0o700)


def _write_atomically(path: Path, jsonl: tuple[bytes, ...]) -> None:
    partial, fd = _open_partial(path)
    _finish(partial, fd, path, jsonl)


def _open_partial(path: Path) -> tuple[Path, int]:
    """A new file beside ``path`` to write it in, open for writing. Its name is new each time,
    so nothing a tool planted there (a link, a FIFO, a directory) is in its way."""
    # path is <config_dir>/projects/<project>/<session>.jsonl: config_dir, projects and the
    # project dir are checked; the config dir's own parents belong to the runtime.
    _real_directories(path, 3)
    partial = path.with_name(f"{path.name}.{secrets.token_hex(8)}.partial")
    return partial, os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)


def _finish(partial: Path, fd: int, path: Path, jsonl: tuple[bytes, ...], written: int = 0) -> None:
    """Write ``jsonl`` into the partial file (its first ``written`` bytes are there already,
    when they end a fragment) and put it in place of ``path``: only if the directories are
    still real and the name still the file written (nothing swapped them meanwhile)."""
    try:
        with os.fdopen(fd, "wb") as out:
            rest = _after(jsonl, written)
            if rest is None:  # not on a fragment's end: write it all
                rest = jsonl
            else:
                out.seek(written)
            for part in rest:  # fragments as stored: the history is never copied into one buffer
                out.write(part)
            out.truncate()
            opened = os.fstat(out.fileno())
        _check_still_there(partial, opened, path)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def _check_still_there(name: Path, written: os.stat_result, path: Path) -> None:
    """Raise ``OSError`` unless ``path``'s directories are still real and ``name`` is still
    the very file written (nothing swapped either while it was being written)."""
    _real_directories(path, 3)
    placed = os.lstat(name)
    if (placed.st_dev, placed.st_ino) != (written.st_dev, written.st_ino):
        raise OSError(f"{name} was replaced while the transcript was written into it")


def _matched_in_place(path: Path, jsonl: tuple[bytes, ...]) -> bool:
    """Make the file at ``path`` hold exactly ``jsonl`` where it lies: the fragments it
    already holds byte for byte stay, the first that differs and all after it are written over
    them (the CLI's own encoding of the turn's entries, or a tool's edit), and the file is cut
    to length. False, with nothing written, unless it is plainly what a restore leaves (see
    ``_plain``): then a new one is written instead. Raises ``OSError`` if the name was swapped
    meanwhile (nothing then counts as current)."""
    _real_directories(path, 3)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    if not _plain(fd):
        os.close(fd)
        return False
    with os.fdopen(fd, "r+b") as file:
        offset, first = 0, len(jsonl)
        for index, part in enumerate(jsonl):
            if not _holds(fd, offset, part):
                first = index
                break
            offset += len(part)
        file.seek(offset)
        for part in jsonl[first:]:
            file.write(part)
        file.truncate()
        file.flush()
        written = os.fstat(fd)
    _check_still_there(path, written, path)
    return True


def _plain(fd: int) -> bool:
    """A regular file of this process's user, with one name, mode 0600, no extended attributes
    (an ACL among them) and no inode flags that change how it is written (sync, append-only,
    immutable): what a restore creates. Anything a tool set on it would otherwise outlive the
    turn, since the file is kept."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_uid != os.geteuid():
        return False
    if stat.S_IMODE(info.st_mode) != 0o600:
        return False
    try:
        if os.listxattr(fd):
            return False
    except OSError:  # a file system without extended attributes
        pass
    flags = array.array("l", [0])
    try:
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags)
    except OSError:  # a file system without inode flags
        return True
    return not flags[0] & _WRITE_FLAGS


def _holds(fd: int, offset: int, part: bytes) -> bool:
    """Whether the file holds ``part`` at ``offset``; compared a window at a time, so a big
    fragment never needs a second copy of itself in memory."""
    for start in range(0, len(part), _COMPARE_WINDOW):
        window = part[start : start + _COMPARE_WINDOW] if len(part) > _COMPARE_WINDOW else part
        if os.pread(fd, len(window), offset + start) != window:
            return False
    return True


def _after(jsonl: tuple[bytes, ...], written: int) -> tuple[bytes, ...] | None:
    """The fragments after the first ``written`` bytes; None unless those end a fragment."""
    for index, part in enumerate(jsonl):
        if written == 0:
            return jsonl[index:]
        if written < len(part):
            return None
        written -= len(part)
    return () if written == 0 else None


def _discard(partial: Path, fd: int) -> None:
    os.close(fd)
    with contextlib.suppress(OSError):
        partial.unlink()


def _last_line(path: Path, *, limit: int) -> bytes:
    """The file's last non-empty line, read from its last ``limit`` bytes at most; empty if it
    starts before them (a file a tool grew, or a hole it cut, is not read on and on), or unless
    a regular file (a link or a FIFO a tool put there must neither redirect nor block this)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return b""
        start = max(0, info.st_size - limit)
        tail = os.pread(fd, info.st_size - start, start).rstrip(b"\n")
    finally:
        os.close(fd)
    cut = tail.rfind(b"\n")
    if cut >= 0:
        return tail[cut + 1 :]
    return tail if start == 0 else b""


_entry_decoder = msgspec.json.Decoder(dict[str, Any])


def _decoded(line: bytes) -> dict[str, Any] | None:
    # Compared decoded: the store re-encodes entries, so equal entries need not be equal bytes.
    try:
        return _entry_decoder.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return None
