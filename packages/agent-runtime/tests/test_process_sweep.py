"""The end-of-turn sweep: whatever a turn started is gone afterwards, however it hid; what was
running before the runtime was built is left alone; the uid scope is never applied as root."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_runtime._process_sweep import (
    ENVIRONMENT_ENDED_EXIT_STATUS,
    effective_scope,
    find_turn_processes,
    sweep_turn_processes,
)
from session_core import Look, ProcessesRemainError, become_subreaper, boot_ticks, kill_until_gone

_DAEMON = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        print(os.getpid(), flush=True)
        os.close(1), os.close(2)  # let the caller stop reading
        time.sleep(120)
    os._exit(0)
os.wait()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_daemons_and_background_jobs_of_a_turn_are_killed_and_older_processes_spared() -> None:
    become_subreaper()
    older = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    time.sleep(0.05)  # a clock tick (10 ms) apart: the turn starts after it
    since = boot_ticks()
    time.sleep(0.02)
    daemon = subprocess.run([sys.executable, "-c", _DAEMON], capture_output=True, text=True, check=True)
    daemon_pid = int(daemon.stdout.split()[0])
    nohup = subprocess.Popen(
        "setsid nohup sleep 120 >/dev/null 2>&1 </dev/null & echo $!",
        shell=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    nohup_pid = int(nohup.communicate()[0].strip())
    try:
        assert {daemon_pid, nohup_pid} <= find_turn_processes("descendants", since)
        killed = sweep_turn_processes(scope="descendants", since_ticks=since)
        assert killed >= 2
        assert not _alive(daemon_pid) and not _alive(nohup_pid)
        assert _alive(older.pid)
        assert find_turn_processes("descendants", since) == set()
    finally:
        older.kill()
        older.wait()


_HEADLESS = """
import ctypes, os, sys, threading, time
def keep_writing():
    while True:
        with open(sys.argv[1], "a") as f:
            f.write("still here\\n")
        time.sleep(0.01)
threading.Thread(target=keep_writing).start()
print(os.getpid(), flush=True)
os.close(1)
ctypes.CDLL(None).pthread_exit(None)  # the main thread ends; the writer thread goes on
"""


def _start_marking(script: str, marks: Path) -> tuple[int, subprocess.Popen[str], str]:
    """Start ``script`` (which writes ``marks`` while it lives) as a turn's process: the
    turn's start, the process and the first line it printed."""
    become_subreaper()
    since = boot_ticks()
    time.sleep(0.02)  # a clock tick apart from the turn's start
    process = subprocess.Popen([sys.executable, "-c", script, str(marks)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return since, process, process.stdout.readline()


def test_a_process_whose_main_thread_ended_is_still_killed(tmp_path) -> None:
    """/proc shows such a process as a zombie while its other threads run: it must not pass
    for dead, or it outlives the turn."""
    marks = tmp_path / "marks"
    since, child, first_line = _start_marking(_HEADLESS, marks)
    pid = int(first_line)
    try:
        deadline = time.monotonic() + 5
        while not (marks.exists() and not _alive(pid)) and time.monotonic() < deadline:
            time.sleep(0.01)  # until its main thread is a zombie and the writer has written
        assert not _alive(pid), "the main thread did not end"
        assert pid in find_turn_processes("descendants", since)

        assert sweep_turn_processes(scope="descendants", since_ticks=since) >= 1

        child.wait(timeout=5)
        size = marks.stat().st_size
        time.sleep(0.1)
        assert marks.stat().st_size == size  # nothing writes any more
    finally:
        child.kill()
        child.wait()


def test_the_uid_scope_is_narrowed_to_descendants_for_root() -> None:
    assert effective_scope("descendants") == "descendants"
    assert effective_scope("uid") == ("descendants" if os.getuid() == 0 else "uid")


_HOPPER = """
import os, sys, time
marks = sys.argv[1]
if os.fork():
    os._exit(0)
os.setsid()
print(os.getpid(), flush=True)
os.close(1)
last = 0.0
while True:
    if os.fork():
        os._exit(0)  # a new pid every round: the parent is a zombie before a look sees its child
    if time.monotonic() - last > 0.01:
        last = time.monotonic()
        with open(marks, "a") as f:
            f.write("still here\\n")
"""


def test_a_process_that_changes_its_pid_all_the_time_is_still_killed(tmp_path) -> None:
    """Each look at /proc may find only the zombie of the pid it just left: a sweep must not
    take that for the end of it."""
    marks = tmp_path / "marks"
    since, starter, _ = _start_marking(_HOPPER, marks)
    try:
        deadline = time.monotonic() + 5
        while not marks.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marks.exists(), "the hopper did not start"

        sweep_turn_processes(scope="descendants", since_ticks=since)

        size = marks.stat().st_size
        time.sleep(0.3)
        assert marks.stat().st_size == size, "the hopper outlived the sweep"
        assert find_turn_processes("descendants", since) == set()
    finally:
        starter.wait()
        _reap_children()
        with contextlib.suppress(ProcessesRemainError):  # what is left of it, had the sweep missed it
            sweep_turn_processes(scope="descendants", since_ticks=since, timeout_s=5)
        _reap_children()


def _reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def test_a_sweep_that_cannot_finish_says_so() -> None:
    become_subreaper()
    since = boot_ticks()
    time.sleep(0.02)
    child = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(ProcessesRemainError, match="still ran"):
            sweep_turn_processes(scope="descendants", since_ticks=since, timeout_s=0)
    finally:
        child.kill()
        child.wait()


_ENDS_ITS_ENVIRONMENT = """
from agent_runtime._process_sweep import end_environment
end_environment("after 2 s of killing, 1 still ran")
print("went on", flush=True)
"""


def test_the_runtime_ends_when_a_turn_process_remains() -> None:
    """Lambda then starts the next invoke in a new environment: no turn runs beside it."""
    ended = subprocess.run([sys.executable, "-c", _ENDS_ITS_ENVIRONMENT], capture_output=True, text=True)
    assert ended.returncode == ENVIRONMENT_ENDED_EXIT_STATUS
    assert "went on" not in ended.stdout
    assert "runtime.ended_for_a_remaining_process" in ended.stdout + ended.stderr


def test_the_zombies_of_processes_it_killed_do_not_keep_a_sweep_going() -> None:
    """Only a process that ended by itself while being hunted looks like a pid hopper: a
    plain background job costs one more look, not a chase."""
    gone = {_NO_SUCH_PID, _NO_SUCH_PID + 1}  # the kills must reach no real process
    looks = iter([Look(running=gone, ended=set()), Look(running=set(), ended=gone)])
    chased: list[int] = []

    def chase() -> set[int]:
        chased.append(1)
        return set()

    assert kill_until_gone(lambda: next(looks), chase=chase, timeout_s=5) == 2
    assert chased == []


_NO_SUCH_PID = 2**22 + 1  # past the largest pid_max Linux allows
