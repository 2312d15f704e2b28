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
system did; space freed elsewhere on it is not taken off), or every ``RESIZE_EVERY_S`` all
the same (a sparse file takes no block), or at the next chance once the file system's use
fell (space freed elsewhere as a tool writes hides the tool's growth: a tool of `agentbot dev`
wrote all of 200 MiB past a 16 MiB limit beside a busy test run), and never so often that
sizing takes more than ``_SIZING_SHARE`` of a core (``_GROWN_SIZING_SHARE`` once the file
system grew past the room left). What a tool writes past the limit is what it writes
in one interval and three sizings: the one under way as it passed, the rest as long again, the
one that sees it; ``_VANISHED_RETRIES`` intervals and sizings more if it deletes or renames
files or folders under every walk. (A walk that meets entries vanishing is walked again a look
later, when an ordinary `rm -rf build/` is over: taking the file system's growth for the
session's at once ended sessions under their limit while another program filled the disk.)

A file a tool unlinked while holding it open (or made nameless with ``O_TMPFILE``) is in no
directory, yet takes the disk until its last close: when the file system grew past the room
left and the tree does not show it, such files that the turn's processes hold open on the
session's file system are counted too (their ``/proc/<pid>/task/<tid>/fd``: a thread may have
a table of its own), and at every sizing after one that found some. Only then: reading every
descriptor of the turn is not for an ordinary turn's every sizing. A process whose
descriptors this user may not read (a non-dumpable one) shows nothing.
"""

from __future__ import annotations

import asyncio
import errno
import math
import os
import stat
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from session_core import get_logger

from ._owned_trees import ENTRY_BLOCK, file_weight, tree_size

log = get_logger(__name__)

INTERVAL_S = 0.25
RESIZE_EVERY_S = 10.0
_SIZING_SHARE = 0.05
# Once the file system grew by more than the room left the tree may be past the limit: it is
# sized again as soon as it has rested as long as its last sizing took. At 5 % a tree whose
# sizing took 1 s (120,000 files) waited 20 s, and a tool wrote gigabytes past the limit.
_GROWN_SIZING_SHARE = 0.5
# A walk that meets entries vanishing under it (an `rm -rf build/`, a `mv`) is walked again a
# look later, this many times at most, before the file system's growth counts as the tree's: a
# tool that renames or deletes under every walk gains this many looks, no more.
_VANISHED_RETRIES = 2
# What the walk meets where an entry it listed was deleted, or replaced by a file or a link.
_VANISHED = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


async def disk_limit_passed(
    root: str,
    limit_bytes: int,
    *,
    turn_processes: Callable[[], Iterable[int]],
    interval_s: float = INTERVAL_S,
    resize_every_s: float = RESIZE_EVERY_S,
) -> float:
    """Wait until the tree under ``root``, with the nameless files ``turn_processes()`` hold
    open on its file system, weighs more than ``limit_bytes``; its size then (runs until
    cancelled while it does not). The directory is held open from the start, so a tool that
    takes the rights on the sessions root away, or moves it, hides nothing; a tree that cannot
    be sized (one too deep, a tool changing it under ``_VANISHED_RETRIES`` + 1 walks a look
    apart) counts the file system's growth since the last sizing as its own. A watch that
    breaks logs ``disk_watch.failed`` and waits on: the turn ends when it returns, and must
    not for want of a look."""
    try:
        return await _watched(root, limit_bytes, turn_processes, interval_s, resize_every_s)
    except Exception as exc:
        log.warning("disk_watch.failed", error=type(exc).__name__)
    while True:
        await asyncio.sleep(3600)


async def _watched(
    root: str,
    limit_bytes: int,
    turn_processes: Callable[[], Iterable[int]],
    interval_s: float,
    resize_every_s: float,
) -> float:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    # A watch cancelled as it sizes (the turn ended) lets ``fd`` go at once while the walk goes
    # on: each walk gets a copy of its own, closed once it is done (or will never start), or
    # it walked whatever the runtime opened next under that number (another chat's folder).
    walks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disk-watch")
    try:

        def sized(last: _Sizing | None, grown: bool) -> asyncio.Future[_Sizing]:
            # Descriptors only once the disk grew past what the tree explains (or held some).
            held_too = grown or (last is not None and last.held > 0)
            own = os.dup(fd)
            walk = walks.submit(_sized, own, limit_bytes, turn_processes if held_too else None, last)
            walk.add_done_callback(lambda _: os.close(own))
            return asyncio.wrap_future(walk)

        async def sized_again(last: _Sizing, grown: bool) -> _Sizing:
            sizing = await sized(last, grown)
            for _ in range(_VANISHED_RETRIES):
                if not sizing.vanished:
                    break
                await asyncio.sleep(interval_s)  # the deletion the walk met is over by then
                sizing = await sized(last, grown)
            return sizing

        last = await sized(None, False)
        growth = _Growth(last.used)
        while last.size <= limit_bytes:
            await asyncio.sleep(interval_s)
            since = time.monotonic() - last.at
            grown = last.size + growth.read(_file_system_used(fd)) > limit_bytes
            if since < last.cost / (_GROWN_SIZING_SHARE if grown else _SIZING_SHARE):
                continue
            if grown or growth.freed or since >= resize_every_s:
                last = await sized_again(last, grown)
                growth = _Growth(last.used)
        return last.size
    finally:
        walks.shutdown(wait=False, cancel_futures=True)
        os.close(fd)


class _Growth:
    """What the file system gained since a sizing, read by read: a read that finds less in use
    than the one before takes nothing off. Space freed elsewhere on the file system (another
    program, another test, in `agentbot dev` the developer's builds) hid a tool's writes until
    the next sizing ``RESIZE_EVERY_S`` later."""

    def __init__(self, used: float) -> None:
        self._previous = used
        self._gained = 0.0
        self.freed = False  # a read found less in use: what was gained since may be hidden

    def read(self, used: float) -> float:
        self.freed = self.freed or used < self._previous
        self._gained += max(0.0, used - self._previous)
        self._previous = used
        return self._gained


class _Sizing(NamedTuple):
    size: float
    used: float  # the file system's use as it began: what grows while sizing shows next
    at: float
    cost: float  # seconds it took
    held: int  # bytes of nameless files the turn's processes held open (0: not looked)
    vanished: bool  # entries vanished under the walk: ``size`` is the last plus the disk's growth


def _sized(
    fd: int, limit_bytes: int, turn_processes: Callable[[], Iterable[int]] | None, last: _Sizing | None
) -> _Sizing:
    """The tree sized, with the nameless files ``turn_processes`` hold if given and the tree
    is not over ``limit_bytes`` alone."""
    used = _file_system_used(fd)
    started = time.monotonic()
    held = 0
    vanished = False
    try:
        size = tree_size(".", dir_fd=fd)
        if turn_processes is not None and size <= limit_bytes:
            held = held_nameless(os.fstat(fd).st_dev, turn_processes())
            size += held
    except OSError as exc:
        vanished = exc.errno in _VANISHED
        size = math.inf
    if size == math.inf:
        size = last.size + used - last.used if last is not None else 0.0
        used = last.used if last is not None else used
    return _Sizing(size, used, started, time.monotonic() - started, held, vanished)


def held_nameless(device: int, pids: Iterable[int]) -> int:
    """Bytes of the regular files on ``device`` with no name left (link count 0) that a
    process of ``pids`` holds open, each file once; a process gone or not ours to read holds
    none."""
    files: dict[int, int] = {}
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            table = f"/proc/{pid}/task/{task}/fd"
            try:
                descriptors = os.listdir(table)
            except OSError:
                continue
            for descriptor in descriptors:
                try:
                    info = os.stat(f"{table}/{descriptor}")  # the open file itself, named or not
                except OSError:
                    continue
                if info.st_nlink == 0 and info.st_dev == device and stat.S_ISREG(info.st_mode):
                    files[info.st_ino] = file_weight(info)
    return sum(files.values())


def _file_system_used(fd: int) -> float:
    """Bytes in use on the file system of the directory ``fd``, an inode in use counting a
    block."""
    fs = os.fstatvfs(fd)
    return (fs.f_blocks - fs.f_bfree) * fs.f_frsize + (fs.f_files - fs.f_ffree) * ENTRY_BLOCK
