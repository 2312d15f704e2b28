"""Sizing and deleting directory trees a tool may have shaped against the runtime.

Tools run as the runtime's own uid, and Landlock does not cover chmod: a tool can make a
directory of ours unreadable or unwritable, or nest directories thousands deep (past Python's
recursion limit, which ``shutil.rmtree`` and ``os.walk`` of Python 3.11 hit, and past PATH_MAX).
Either used to make the runtime fail every later turn in that container, other chats' too.
Here a tree is walked through directory descriptors, never through a link, a directory
that refuses us is ours to open up again, and removal holds one directory open at a time and
needs no free space (a tool may also have filled the disk).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import stat
from typing import Any

# Deeper than any checkout a session needs; a deeper tree counts as over the disk budget
# (measuring it would take two descriptors per level).
MAX_SIZED_DEPTH = 64
# What an entry counts at least, however small: ext4's block, which a directory and any file
# with data take. Empty files cost inodes, not bytes: counted as bytes alone, a flood of them
# (millions of inodes, no byte) fitted any budget.
ENTRY_BLOCK = 4096
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def reclaim_rights(path: str | os.PathLike[str]) -> None:
    """Give ourselves back read, write and search on ``path`` (a link is followed: it may be
    the operator's) if it is ours and a tool took them away; someone else's is left alone."""
    info = os.stat(path)
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o700 != 0o700:
        os.chmod(path, stat.S_IMODE(info.st_mode) | 0o700)


def tree_size(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> float:
    """Bytes of the entries under the directory ``path`` (relative to ``dir_fd`` if given),
    each (file, link or directory) counting at least ENTRY_BLOCK and a file at least the
    blocks it holds, once whatever its number of names (0 if there is none, or a link);
    ``math.inf`` for a tree nested deeper than MAX_SIZED_DEPTH. An entry listed and gone
    before it was looked at raises (``FileNotFoundError``; ``NotADirectoryError`` or ELOOP
    for a folder replaced): skipped, a file a tool renames under every walk was never seen."""
    try:
        top = _open_directory(os.fspath(path), dir_fd, writable=False)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):  # ELOOP: a link
            return 0
        raise
    total = 0
    linked: set[tuple[int, int]] = set()  # files with several names, counted once
    levels: list[tuple[int, Any]] = [_listing(top)]  # a descriptor and its entries, per level
    try:
        while levels:
            fd, entries = levels[-1]
            entry = next(entries, None)
            if entry is None:
                _close(*levels.pop())
            elif not entry.is_dir(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)  # gone since listed: raised, as a folder
                if info.st_nlink > 1:  # hard links share their blocks: a further name, a block
                    if (info.st_dev, info.st_ino) in linked:
                        total += ENTRY_BLOCK
                        continue
                    linked.add((info.st_dev, info.st_ino))
                total += file_weight(info)
            elif len(levels) > MAX_SIZED_DEPTH:
                return math.inf
            else:
                total += ENTRY_BLOCK
                levels.append(_listing(_open_directory(entry.name, fd, writable=False)))
    finally:
        for level in levels:
            _close(*level)
    return total


def file_weight(info: os.stat_result) -> int:
    """What a file counts against a budget: its size, its blocks if more, a block at least."""
    # Blocks too: fallocate(KEEP_SIZE) takes the disk with a size of 0.
    return max(info.st_size, info.st_blocks * 512, ENTRY_BLOCK)


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Delete what is at ``path``, if anything: a file or a link itself, a directory with all
    it holds. The tree is walked depth first through one descriptor at a time (back up through
    ``..``, never where a directory moved out of the tree leads), so no depth of nesting needs
    more than two descriptors or a long path; and nothing is moved or made, only unlinked, so
    removing needs no free space: a tool may have filled the disk (every block or inode) with
    the very tree that must go before anything is written."""
    name = os.fspath(path)
    try:
        if not stat.S_ISDIR(os.lstat(name).st_mode):
            os.unlink(name)
            return
    except FileNotFoundError:
        return
    fd = _open_directory(name, None)
    below: list[tuple[str, tuple[int, int]]] = []  # entered under ``path``: (name, where it is)
    left = [_entries(fd)]  # per directory entered: what is still to remove in it
    try:
        while True:
            if left[-1]:
                entry, is_directory = left[-1].pop()
                if not is_directory:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry, dir_fd=fd)
                    continue
                here = _identity(fd)
                inner = _open_directory(entry, fd)
                below.append((entry, here))
                os.close(fd)
                fd = inner
                left.append(_entries(fd))
            elif below:  # emptied: up again, and remove it there
                outer = os.open("..", _DIRECTORY_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = outer
                left.pop()
                entry, where = below.pop()
                if _identity(fd) != where:  # it was moved out of the tree: never follow it
                    os.close(fd)
                    fd = -1
                    fd = _open_directory(name, None)  # what is left of the tree, from the top
                    below, left = [], [_entries(fd)]
                    continue
                os.rmdir(entry, dir_fd=fd)
            else:
                break
    finally:
        if fd >= 0:
            os.close(fd)
    os.rmdir(name)


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _entries(fd: int) -> list[tuple[str, bool]]:
    """The entries of the directory ``fd``: (name, whether a directory, never through a link)."""
    with os.scandir(fd) as entries:
        return [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]


def _open_directory(name: str, dir_fd: int | None, *, writable: bool = True) -> int:
    """A descriptor of the directory ``name`` (never through a link), readable again if a tool
    took that away, and writable too unless only read (``writable``: what moves out of it)."""
    try:
        fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        # Unreadable: it was listed as a directory, not a link, and the tools are stopped.
        os.chmod(name, 0o700, dir_fd=dir_fd)
        fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=dir_fd)
    if not writable:
        return fd
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o700 != 0o700:
            os.fchmod(fd, mode | 0o700)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _listing(fd: int) -> tuple[int, Any]:
    """``fd`` and its entries (closed again if they cannot be listed)."""
    try:
        return fd, os.scandir(fd)
    except BaseException:
        os.close(fd)
        raise


def _close(fd: int, entries: Any) -> None:
    entries.close()
    os.close(fd)
