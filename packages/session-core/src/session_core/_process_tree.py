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
from typing import NamedTuple

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


class Look(NamedTuple):
    """What one look at ``/proc`` found of the processes being killed."""

    running: set[int]
    ended: set[int]  # their zombies: a process that forks and exits at once leaves one each time


def look_at(pids: set[int], table: dict[int, ProcessInfo]) -> Look:
    """``pids`` split into those that still run and the zombies."""
    running = {pid for pid in pids if table[pid].state != "Z"}
    return Look(running=running, ended=pids - running)


def children(pid: int) -> set[int]:
    """The children of ``pid`` (of all its threads), read straight from the kernel: far
    quicker than a look at every process. Empty where the kernel does not offer it."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                found.update(int(child) for child in f.read().split())
        except (OSError, ValueError):
            continue
    return found


class ProcessesRemainError(RuntimeError):
    """Killing did not end every process it was after within its time."""


def kill_until_gone(
    look: Callable[[], Look], *, chase: Callable[[], set[int]] | None = None, timeout_s: float = 2.0
) -> int:
    """SIGKILL what ``look()`` finds running, round after round, until a look finds nothing
    running and no process that ended by itself since; returns how many it signalled.

    A process that forks while being killed is found in the next round. One that forks and
    exits over and over (a new pid every moment) may be a zombie whenever a look reads it,
    its child born after the look listed ``/proc``: the zombie it leaves (not one of ours:
    those were killed) keeps the rounds going, and meanwhile ``chase()`` (what is quick to
    find: this process's children, where a subreaper's orphans land) is killed in a tight
    loop until it catches the child. Raises ``ProcessesRemainError`` when that does not end
    within ``timeout_s``."""
    killed: set[int] = set()
    ended: set[int] = set()  # zombies seen (their pids stay taken until they are reaped)
    give_up = time.monotonic() + timeout_s
    while True:
        found = look()
        ended_by_themselves = found.ended - ended - killed
        ended |= found.ended
        if not found.running and not ended_by_themselves:
            return len(killed)
        if time.monotonic() > give_up:
            raise ProcessesRemainError(
                f"after {timeout_s:g} s of killing, {len(found.running)} still ran and "
                f"{len(ended_by_themselves)} had just exited by themselves"
            )
        _kill(found.running)
        killed |= found.running
        if chase is not None and ended_by_themselves:
            for _ in range(_CHASE_PASSES):
                chased = chase() - ended
                _kill(chased)
                killed |= chased
                if time.monotonic() > give_up:
                    break
        else:
            time.sleep(0.002)  # let the kernel tear them down before the next look


_CHASE_PASSES = 200  # ~10-20 µs each: a process that forks every ~100 µs is caught within them


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
