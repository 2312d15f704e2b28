"""No process of a turn outlives the turn: not a background job, not a ``setsid`` daemon,
not a double fork.

The runtime process is a child subreaper (``PR_SET_CHILD_SUBREAPER``): a process started by a
turn that loses its parent is re-parented to the runtime, not to init, so whatever it does it
stays a descendant. Before a turn's result is returned (and before the next turn starts) every
descendant started since ``since_ticks`` is SIGKILLed, round after round until none is left
(a process that forks while being killed is found in the next round).

In Lambda (``PROCESS_SWEEP_SCOPE=uid``) the execution environment belongs to this function:
every process of the runtime's uid other than the runtime and its ancestors is killed as
well, which also catches a process that was never a descendant.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from dataclasses import dataclass

from ._settings import SweepScope

_PR_SET_CHILD_SUBREAPER = 36
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_MAX_ROUNDS = 200


@dataclass(frozen=True)
class _Process:
    pid: int
    ppid: int
    uid: int
    state: str
    start_ticks: int


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}, {value}): {os.strerror(errno)}")


def become_subreaper() -> None:
    """Make orphaned descendants of this process its children instead of init's."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def boot_ticks() -> int:
    """Now, in the unit and clock of a process's start time in ``/proc/<pid>/stat``."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * _CLOCK_TICKS)


def _read_process(pid: int) -> _Process | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    # The command name in (...) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return _Process(pid=pid, ppid=int(fields[1]), uid=uid, state=fields[0], start_ticks=int(fields[19]))


def _process_table() -> dict[int, _Process]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (process := _read_process(int(entry))) is not None:
            table[process.pid] = process
    return table


def _ancestors(pid: int, table: dict[int, _Process]) -> set[int]:
    found: set[int] = set()
    while pid in table and pid not in found:
        found.add(pid)
        pid = table[pid].ppid
    return found


def find_turn_processes(scope: SweepScope, since_ticks: int) -> list[int]:
    """The processes a sweep would kill now (one look at ``/proc``). The uid scope is never
    applied as root: every process of the machine would be a victim."""
    return _turn_processes(_process_table(), effective_scope(scope), since_ticks)


def effective_scope(scope: SweepScope) -> SweepScope:
    """``scope``, except that root gets "descendants" (root's uid is not the sandbox's)."""
    return "descendants" if scope == "uid" and os.getuid() == 0 else scope


def _turn_processes(table: dict[int, _Process], scope: SweepScope, since_ticks: int) -> list[int]:
    me = os.getpid()
    children: dict[int, list[int]] = {}
    for process in table.values():
        children.setdefault(process.ppid, []).append(process.pid)
    victims: set[int] = set()
    todo = [pid for pid in children.get(me, []) if table[pid].start_ticks >= since_ticks]
    while todo:
        pid = todo.pop()
        if pid not in victims:
            victims.add(pid)
            todo.extend(children.get(pid, []))
    if scope == "uid":
        spared = _ancestors(me, table)
        uid = os.getuid()
        victims |= {p.pid for p in table.values() if p.uid == uid and p.pid not in spared}
    # A zombie runs nothing; it is reaped below if it is ours.
    return sorted(pid for pid in victims if table[pid].state != "Z")


def sweep_turn_processes(*, scope: SweepScope, since_ticks: int, timeout_s: float = 2.0) -> int:
    """SIGKILL every process of the turn (see the module docstring) and wait until none runs;
    returns how many were killed. Their zombies are left for ``reap_zombie_children``, called
    once the SDK has awaited its own CLI process."""
    killed: set[int] = set()
    give_up = time.monotonic() + timeout_s
    for _ in range(_MAX_ROUNDS):
        victims = find_turn_processes(scope, since_ticks)
        if not victims or time.monotonic() > give_up:
            break
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed.update(victims)
        time.sleep(0.002)  # let the kernel tear them down before the next look
    return len(killed)


def reap_zombie_children(since_ticks: int) -> None:
    """Collect the exit status of dead children started since ``since_ticks`` (orphans that
    were re-parented to us), so they do not pile up as zombies in a warm container."""
    me = os.getpid()
    for process in _process_table().values():
        if process.ppid == me and process.state == "Z" and process.start_ticks >= since_ticks:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(process.pid, os.WNOHANG)
