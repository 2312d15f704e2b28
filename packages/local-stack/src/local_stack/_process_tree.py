"""Keep every process a local function worker starts in one tree, and end that tree whole.

A worker runs under a small reaper (``python -m local_stack._reaper --pid-fd N -- CMD``)
that marks itself a child subreaper (``PR_SET_CHILD_SUBREAPER``): a tool that calls
``setsid`` or double-forks is re-parented to the reaper instead of init, so it stays in the
tree. When the command exits (or is killed) and when the reaper is told to stop (SIGTERM,
SIGINT), it kills every process left in its tree, reaps them, and exits the way the command
did. Process groups are no help here: a tool can leave its group, not its subreaper.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from session_core import (
    Look,
    ProcessesRemainError,
    become_subreaper,
    children,
    descendants,
    kill_until_gone,
    look_at,
    make_non_dumpable,
    process_table,
)

_GRACE_S = 2.0  # what a stopped command gets to exit on SIGTERM before the tree is killed
_PF_EXITING = 0x4  # /proc/<pid>/stat flags: the process has begun to exit
_SIGKILL_BIT = 1 << (signal.SIGKILL - 1)  # in the hex signal masks of /proc/<pid>/status


def dying(pid: int) -> bool:
    """Whether ``pid`` is killed or exiting but not yet a zombie (or is gone): a SIGKILL is
    pending, or its exit has begun. For a moment after ``kill`` a process still looks like it
    runs; it will never take another request."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            flags = int(f.read().rsplit(b")", 1)[1].split()[6])
        with open(f"/proc/{pid}/status", "rb") as f:
            status = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
    except (OSError, IndexError, ValueError):
        return True
    pending = int(status.get(b"SigPnd", b"0"), 16) | int(status.get(b"ShdPnd", b"0"), 16)
    return bool(flags & _PF_EXITING or pending & _SIGKILL_BIT)


def kill_descendants(root: int) -> int:
    """SIGKILL every descendant of ``root`` until none is left; how many were killed. When
    ``root`` is this process, the dead are reaped as they go."""

    def look() -> Look:
        reaped = _reap_all() if root == os.getpid() else set()
        table = process_table()
        found = look_at(descendants(root, table), table)
        return Look(running=found.running, ended=found.ended | reaped)  # reaped: zombies, too

    try:
        killed = kill_until_gone(look, chase=lambda: children(root), timeout_s=10.0)
    except ProcessesRemainError as exc:
        print(f"local_stack: processes of pid {root}'s tree remain: {exc}", file=sys.stderr)
        killed = 0
    if root == os.getpid():
        _reap_all()
    return killed


def _reap_all() -> set[int]:
    """Reap every child that has ended; their pids."""
    reaped: set[int] = set()
    with contextlib.suppress(ChildProcessError):
        while (pid := os.waitpid(-1, os.WNOHANG)[0]) > 0:
            reaped.add(pid)
    return reaped


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signum)


def run_reaped(
    command: Sequence[str], *, pid_fd: int | None = None, env: dict[str, str] | None = None
) -> int:
    """Run ``command`` as the only direct child of this subreaper; when it ends, or this
    process is told to stop, end everything left in the tree. Returns the exit status
    to use (negative: the signal that ended the command)."""
    with contextlib.suppress(OSError):  # not Linux: the tree is killed as far as it is found
        become_subreaper()
        # It was started with the function's environment (its credentials): no tool may read it.
        make_non_dumpable()
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    child = subprocess.Popen(list(command), env=env)
    if pid_fd is not None:
        os.write(pid_fd, str(child.pid).encode())
        os.close(pid_fd)
    status = -signal.SIGKILL
    try:
        while True:
            pid, raw = os.waitpid(-1, 0)  # reaps re-parented orphans as well
            if pid == child.pid:
                status = os.waitstatus_to_exitcode(raw)
                break
    except _Stop as stop:
        status = -stop.signum
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)  # a moment to stop cleanly, then the tree goes
        with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
            child.wait(timeout=_GRACE_S)
    except ChildProcessError:  # nothing left to wait for
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kill_descendants(os.getpid())
    _reap_all()
    return status


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local_stack._reaper")
    parser.add_argument("--pid-fd", type=int, help="write the command's pid to this descriptor")
    parser.add_argument("--env-fd", type=int, help="read the command's environment (JSON) from it")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    env = None
    if args.env_fd is not None:
        with os.fdopen(args.env_fd, "rb") as pipe:
            env = json.loads(pipe.read())
    status = run_reaped(command, pid_fd=args.pid_fd, env=env)
    if status < 0:  # end the way the command ended, so the parent sees the same signal
        if -status not in (signal.SIGKILL, signal.SIGSTOP):  # these two take no handler
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    sys.exit(status if status >= 0 else 128 - status)
