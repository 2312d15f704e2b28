"""Processes seen through ``/proc``: who descends from whom, and killing a set of them until
none is left. Shared by the runtime's end-of-turn sweep and the local Lambda service's reaper.

A child subreaper (``become_subreaper``) keeps every descendant findable: a process that
calls ``setsid`` or double-forks is re-parented to it, not to init. Process groups are no help:
a tool can leave its group, not its subreaper.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class ProcessInfo:
    """One process as ``/proc/<pid>/stat`` describes it."""

    pid: int
    ppid: int
    uid: int
    state: str  # "Z": a zombie, which runs nothing (no thread of it runs)
    start_ticks: int  # clock ticks after boot, comparable with ``boot_ticks()``


def become_subreaper() -> None:
    """Make orphaned descendants of this process re-parent to it instead of init."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(errno)}")


def boot_ticks() -> int:
    """Now, in the unit and clock of ``ProcessInfo.start_ticks``."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def _read(pid: int) -> ProcessInfo | None:
    try:
        fields = _stat_fields(f"/proc/{pid}/stat")
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:  # gone meanwhile
        return None
    state = fields[0] if fields[0] != "Z" else _state_of_a_live_thread(pid)
    return ProcessInfo(pid=pid, ppid=int(fields[1]), uid=uid, state=state, start_ticks=int(fields[19]))


def _stat_fields(path: str) -> list[str]:
    """The fields of a ``/proc`` stat file after the command name, from the state on."""
    with open(path, "rb") as f:
        stat = f.read().decode("ascii", "replace")
    # The command name in (...) may hold spaces and parentheses: split after the last ')'.
    return stat.rsplit(")", 1)[1].split()


def _state_of_a_live_thread(pid: int) -> str:
    """ "Z" unless a thread of ``pid`` still runs: a process whose main thread has exited shows
    as a zombie in its own stat while its other threads go on (and must still be killed)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return "Z"
    for task in tasks:
        try:
            state = _stat_fields(f"/proc/{pid}/task/{task}/stat")[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            return state
    return "Z"


def runs(pid: int) -> bool:
    """Whether process ``pid`` exists and a thread of it still runs (not a zombie)."""
    process = _read(pid)
    return process is not None and process.state != "Z"


def process_table() -> dict[int, ProcessInfo]:
    """Every process now, by pid."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (process := _read(int(entry))) is not None:
            table[process.pid] = process
    return table


def descendants(root: int, table: dict[int, ProcessInfo], *, since_ticks: int = 0) -> set[int]:
    """Processes whose chain of parents leads to ``root`` (not included); of ``root``'s
    children only those started at or after ``since_ticks`` (and all beneath them)."""
    children: dict[int, list[int]] = {}
    for process in table.values():
        children.setdefault(process.ppid, []).append(process.pid)
    found: set[int] = set()
    todo = [pid for pid in children.get(root, []) if table[pid].start_ticks >= since_ticks]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def ancestors(pid: int, table: dict[int, ProcessInfo]) -> set[int]:
    """``pid`` and every process above it."""
    found: set[int] = set()
    while pid in table and pid not in found:
        found.add(pid)
        pid = table[pid].ppid
    return found


def kill_until_gone(find: Callable[[], set[int]], *, timeout_s: float = 2.0, rounds: int = 200) -> int:
    """SIGKILL what ``find()`` returns, round after round, until it returns nothing (a process
    that forks while being killed is found in the next round); returns how many were killed."""
    killed: set[int] = set()
    give_up = time.monotonic() + timeout_s
    for _ in range(rounds):
        victims = find()
        if not victims or time.monotonic() > give_up:
            break
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed.update(victims)
        time.sleep(0.002)  # let the kernel tear them down before the next look
    return len(killed)


def live(pids: set[int], table: dict[int, ProcessInfo]) -> set[int]:
    """Those of ``pids`` that still run (not zombies)."""
    return {pid for pid in pids if table[pid].state != "Z"}
