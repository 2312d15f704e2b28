"""No process of a turn outlives the turn: not a background job, not a ``setsid`` daemon,
not a double fork.

The runtime process is a child subreaper (see ``session_core``'s process tree): a process a
turn started that loses its parent is re-parented to the runtime, so whatever it does it stays
a descendant. Before a turn's result is returned (and before the next turn starts) every
descendant started since ``since_ticks`` is SIGKILLed until none is left.

In Lambda (``PROCESS_SWEEP_SCOPE=uid``) the execution environment belongs to this function:
every process of the runtime's uid other than the runtime and its ancestors is killed as
well, which also catches a process that was never a descendant. Never as root.

A process that keeps escaping (see ``kill_until_gone``) ends the runtime: no other turn may run
beside it (``end_environment``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import NoReturn

from session_core import (
    Look,
    ProcessesRemainError,
    ancestors,
    boot_ticks,
    children,
    descendants,
    get_logger,
    kill_until_gone,
    look_at,
    process_table,
)

from ._settings import SweepScope


def effective_scope(scope: SweepScope) -> SweepScope:
    """``scope``, except that root gets "descendants" (root's uid is the whole machine's)."""
    return "descendants" if scope == "uid" and os.getuid() == 0 else scope


def find_turn_processes(scope: SweepScope, since_ticks: int) -> set[int]:
    """The live processes a sweep would kill now (one look at ``/proc``)."""
    return _look(scope, since_ticks).running


def _look(scope: SweepScope, since_ticks: int) -> Look:
    table = process_table()
    me = os.getpid()
    victims = descendants(me, table, since_ticks=since_ticks)
    if effective_scope(scope) == "uid":
        spared, uid = ancestors(me, table), os.getuid()
        victims |= {p.pid for p in table.values() if p.uid == uid and p.pid not in spared}
    return look_at(victims, table)


def sweep_turn_processes(*, scope: SweepScope, since_ticks: int, timeout_s: float = 2.0) -> int:
    """SIGKILL every process of the turn (see the module docstring) and wait until none runs;
    returns how many were killed. Their zombies are left for ``reap_zombie_children``, called
    once the SDK has awaited its own CLI process. Raises ``ProcessesRemainError`` when some
    process keeps escaping (see ``kill_until_gone``)."""
    me = os.getpid()

    @functools.cache  # worked out when first needed: a chase is rare
    def spared() -> frozenset[int]:
        """Our children from before ``since_ticks``: they live on in "descendants"."""
        if effective_scope(scope) != "descendants":
            return frozenset()
        table = process_table()
        return frozenset(p.pid for p in table.values() if p.ppid == me and p.start_ticks < since_ticks)

    def chase() -> set[int]:
        return children(me) - spared()

    return kill_until_gone(lambda: _look(scope, since_ticks), chase=chase, timeout_s=timeout_s)


# The runtime ends itself with this status when a turn's process cannot be got rid of.
ENVIRONMENT_ENDED_EXIT_STATUS = 70

log = get_logger("agent_runtime.process_sweep")


def end_environment(reason: str) -> NoReturn:
    """A process of a turn escaped the sweep, so this environment can no longer keep turns
    apart: end the runtime rather than run another turn beside that process. The invoke
    fails, its message is retried, and Lambda starts the runtime anew, which kills every
    other process of the uid before its first invoke (``sweep_before_the_first_invoke``)."""
    log.error("runtime.ended_for_a_remaining_process", reason=reason)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(ENVIRONMENT_ENDED_EXIT_STATUS)


def sweep_before_the_first_invoke(scope: str) -> None:
    """In Lambda (``scope`` "uid") kill every other process of the uid while the runtime
    starts, before it asks for its first invoke: an earlier runtime of this environment that
    ended over a process it could not kill may have left that process behind."""
    if scope != "uid" or effective_scope("uid") != "uid":
        return
    try:
        killed = sweep_turn_processes(scope="uid", since_ticks=boot_ticks())
    except ProcessesRemainError as exc:
        end_environment(str(exc))
    if killed:
        log.warning("runtime.processes_killed_at_start", count=killed)


def reap_zombie_children(since_ticks: int) -> None:
    """Collect the exit status of dead children started since ``since_ticks`` (orphans that
    were re-parented to us), so they do not pile up as zombies in a warm container."""
    me = os.getpid()
    for process in process_table().values():
        if process.ppid == me and process.state == "Z" and process.start_ticks >= since_ticks:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(process.pid, os.WNOHANG)
