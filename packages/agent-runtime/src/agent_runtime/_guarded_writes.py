"""Writing the runtime's own files into a directory the agent's tools can write too (a
session's config dir): never through a link, a FIFO or a directory a tool put in the way, and
never left half written under the real name.

``levels`` is how many directories above the file must be real (the config dir's own parents
belong to the runtime)."""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import secrets
import stat
from pathlib import Path

_COMPARE_WINDOW = 8 * 1024 * 1024  # snapshot fragments are ~2.5 MB: most compare whole
_FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h, a long-sized read
# FS_SYNC_FL, FS_IMMUTABLE_FL, FS_APPEND_FL, FS_JOURNAL_DATA_FL, FS_DIRSYNC_FL
_WRITE_FLAGS = 0x8 | 0x10 | 0x20 | 0x4000 | 0x10000


def real_directories(path: Path, levels: int) -> None:
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


def write_atomically(path: Path, jsonl: tuple[bytes, ...], *, levels: int = 3) -> None:
    """Put a file holding ``jsonl`` at ``path`` (see ``open_partial`` for ``levels``)."""
    partial, fd = open_partial(path, levels=levels)
    finish(partial, fd, path, jsonl, levels=levels)


def open_partial(path: Path, *, levels: int = 3) -> tuple[Path, int]:
    """A new file beside ``path`` to write it in, open for writing. Its name is new each time,
    so nothing a tool planted there (a link, a FIFO, a directory) is in its way."""
    # The ``levels`` directories above it are checked: for <config_dir>/projects/<project>/
    # <session>.jsonl, 3 (the config dir's own parents belong to the runtime).
    real_directories(path, levels)
    partial = path.with_name(f"{path.name}.{secrets.token_hex(8)}.partial")
    return partial, os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)


def finish(
    partial: Path, fd: int, path: Path, jsonl: tuple[bytes, ...], written: int = 0, *, levels: int = 3
) -> None:
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
        _check_still_there(partial, opened, path, levels)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def _check_still_there(name: Path, written: os.stat_result, path: Path, levels: int) -> None:
    """Raise ``OSError`` unless ``path``'s directories are still real and ``name`` is still
    the very file written (nothing swapped either while it was being written)."""
    real_directories(path, levels)
    placed = os.lstat(name)
    if (placed.st_dev, placed.st_ino) != (written.st_dev, written.st_ino):
        raise OSError(f"{name} was replaced while the transcript was written into it")


def matched_in_place(path: Path, jsonl: tuple[bytes, ...], *, levels: int = 3) -> bool:
    """Make the file at ``path`` hold exactly ``jsonl`` where it lies: the fragments it
    already holds byte for byte stay, the first that differs and all after it are written over
    them (the CLI's own encoding of the turn's entries, or a tool's edit), and the file is cut
    to length. False, with nothing written, unless it is plainly what a restore leaves (see
    ``_plain``): then a new one is written instead. Raises ``OSError`` if the name was swapped
    meanwhile (nothing then counts as current)."""
    real_directories(path, levels)
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
    _check_still_there(path, written, path, levels)
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


def discard(partial: Path, fd: int) -> None:
    os.close(fd)
    with contextlib.suppress(OSError):
        partial.unlink()


def last_line(path: Path, *, limit: int) -> bytes:
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
