"""Watching what a running turn's tools write against SESSION_DISK_LIMIT_MB.

Lambda bounds ``/tmp`` by its ephemeral storage; a developer's disk under `agentbot dev` is
bounded by nothing, and a tool writes as fast as the disk takes it. So the turn ends once the
session's directory (where Landlock lets the tools write: the cwd, the CLI's config dir, HOME
and TMPDIR), sized as the next turn's start sizes it (``tree_size``: an entry weighs a block at
least), passes the limit. The watch runs in the runtime, which no tool can signal or stop (the
launcher's seccomp filter, Landlock's signal scope), root or not, in Lambda or not.

Cheap on an ordinary turn: the directory is sized once as the run starts; after that only its
file system's use (one ``statvfs``: blocks, and inodes at a block each) is read every
``INTERVAL_S``, and the directory is sized again only once the file system grew by more than
the room left under the limit (the session's files cannot have grown more than the whole file
system did), or every ``RESIZE_EVERY_S`` all the same (a sparse file takes no block), and never
so often that sizing takes more than ``_SIZING_SHARE`` of a core (``_GROWN_SIZING_SHARE`` once
the file system grew past the room left). What a tool writes past the limit is what it writes
in one interval and three sizings: the one under way as it passed, the rest as long again, the
one that sees it.
"""

from __future__ import annotations

import asyncio
import math
import os
import time

from ._owned_trees import ENTRY_BLOCK, tree_size

INTERVAL_S = 0.25
RESIZE_EVERY_S = 10.0
_SIZING_SHARE = 0.05
# Once the file system grew by more than the room left the tree may be past the limit: it is
# sized again as soon as it has rested as long as its last sizing took. At 5 % a tree whose
# sizing took 1 s (120,000 files) waited 20 s, and a tool wrote gigabytes past the limit.
_GROWN_SIZING_SHARE = 0.5


async def disk_limit_passed(root: str, limit_bytes: int, *, interval_s: float = INTERVAL_S) -> float:
    """Wait until the tree under ``root`` weighs more than ``limit_bytes``; its size then (runs
    until cancelled while it does not). The directory is held open from the start, so a tool
    that takes the rights on the sessions root away, or moves it, hides nothing; a tree that
    cannot be sized (one too deep, a tool changing it under the walk) counts the file system's
    growth since the last sizing as its own."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        size, used, sized_at, cost = await asyncio.to_thread(_sized, fd, 0.0, None)
        while size <= limit_bytes:
            await asyncio.sleep(interval_s)
            since = time.monotonic() - sized_at
            grown = size + _file_system_used(fd) - used > limit_bytes
            if since < cost / (_GROWN_SIZING_SHARE if grown else _SIZING_SHARE):
                continue
            if grown or since >= RESIZE_EVERY_S:
                size, used, sized_at, cost = await asyncio.to_thread(_sized, fd, size, used)
        return size
    finally:
        os.close(fd)


def _sized(fd: int, last_size: float, last_used: float | None) -> tuple[float, float, float, float]:
    """(size, file system use before sizing, when, seconds it took)."""
    used = _file_system_used(fd)  # first: what grows while sizing shows at the next look
    started = time.monotonic()
    try:
        size = tree_size(".", dir_fd=fd)
    except OSError:
        size = math.inf
    if size == math.inf:
        size = last_size + (used - last_used if last_used is not None else 0.0)
        used = last_used if last_used is not None else used
    return size, used, started, time.monotonic() - started


def _file_system_used(fd: int) -> float:
    """Bytes in use on the file system of the directory ``fd``, an inode in use counting a
    block."""
    fs = os.fstatvfs(fd)
    return (fs.f_blocks - fs.f_bfree) * fs.f_frsize + (fs.f_files - fs.f_ffree) * ENTRY_BLOCK
