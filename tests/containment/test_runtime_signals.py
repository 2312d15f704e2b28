"""A tool cannot signal the runtime that runs it, whatever the kernel's Landlock.

Every process in a Lambda environment has one uid, so the kernel lets a tool stop or kill the
runtime (``kill -STOP``, ``kill -KILL -1``, the runtime's process group, a pidfd, SIGIO of a
file it owns); Landlock refuses that only from ABI 6 (signal scoping), which Lambda's kernels
may lack. A stopped runtime cannot sweep the tool that stopped it, nor answer. The launcher's
seccomp filter and its own session keep the runtime out of reach; a tool still signals its own
processes (``kill %1``, ``timeout``). Run with Landlock and without (``LANDLOCK=off``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_runtime._owned_trees import remove_tree

from tests.containment.contained_runtime import ContainedRuntime
from tests.containment.support import ROOT_ONLY_REASON, bash_scripted_runtime, runtime_user

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_ONLY_REASON),
]
SIGNALLER, OTHER = "default/1111/0", "default/2222/0"
# What a tool does with its own processes: all must still work.
OWN_PROCESSES = (
    "echo own; sleep 30 & kill %1; wait %1; echo job=$?;"
    " timeout 1 sleep 5; echo timeout=$?;"
    " sh -c 'sleep 30 & p=$!; kill -TERM $p; wait $p; echo child=$?';"
    " sleep 30 & p=$!; kill -KILL $p; wait $p; echo pid=$?"
)
REFUSED = {errno.EPERM, errno.ENOSYS}  # ENOSYS: the pidfd calls, so callers fall back to kill


def _script_dir() -> Path:
    scripts = Path(tempfile.mkdtemp(prefix="agentbot-signals-"))
    shutil.copy(Path(__file__).with_name("signal_runtime.py"), scripts / "signal_runtime.py")
    scripts.chmod(0o755)
    return scripts


@contextlib.contextmanager
def _runtime_and_signal_script(landlock: bool) -> Iterator[tuple[ContainedRuntime, Path]]:
    """The runtime and the directory of signal_runtime.py, both removed afterwards."""
    user = runtime_user(landlock)
    scratch, scripts = Path(tempfile.mkdtemp(prefix="agentbot-signal-")), _script_dir()
    try:
        with bash_scripted_runtime(
            user, landlock=landlock, scratch=scratch, model_key="sk-ant-signals-MODEL-KEY-0077"
        ) as runtime:
            yield runtime, scripts
    finally:
        remove_tree(scratch)
        remove_tree(scripts)


def _report(text: str, marker: str) -> dict[str, object]:
    (line,) = [line for line in text.splitlines() if marker in line][-1:]
    return dict(json.loads(line.split(marker, 1)[1]))


@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_a_tool_cannot_signal_the_runtime_but_still_its_own_processes(landlock: bool) -> None:
    with _runtime_and_signal_script(landlock) as (runtime, scripts):
        probed = runtime.turn(SIGNALLER, 1, f"bash: python3 {scripts}/signal_runtime.py probe")
        own = runtime.turn(OTHER, 2, f"bash: {OWN_PROCESSES}")

    assert probed.ok and "SIGNAL-PROBE" in probed.text, probed  # the tool ran
    seen = _report(probed.text, "SIGNAL-PROBE ")
    reached = {
        name: value
        for name, value in seen.items()
        if name not in ("runtime threads", "kill a runtime thread (tid)") and value not in REFUSED
    }
    assert reached == {"same group as runtime": False, "same session as runtime": False}, seen
    assert own.ok and all(f"{name}=" in own.text for name in ("job", "timeout", "child", "pid")), own
    assert "job=143" in own.text and "timeout=124" in own.text, own.text
    assert "child=143" in own.text and "pid=137" in own.text, own.text


@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_a_tool_that_stops_or_kills_everything_of_its_uid_breaks_no_turn(landlock: bool) -> None:
    """``kill -STOP`` of the runtime, SIGKILL to its group and to every process of the uid: the
    turn still answers, the next chat's too, and nothing of the turn outlives it."""
    with _runtime_and_signal_script(landlock) as (runtime, scripts):
        started = time.monotonic()
        stopped = runtime.turn(SIGNALLER, 1, f"bash: python3 {scripts}/signal_runtime.py stop")
        took = time.monotonic() - started
        after = runtime.turn(OTHER, 2, "hello")
        again = runtime.turn(SIGNALLER, 3, "still there?")

    assert stopped.ok and "SIGNAL-SENT" in stopped.text, stopped
    sent = _report(stopped.text, "SIGNAL-SENT ")
    assert set(sent.values()) <= REFUSED | {-1}, sent
    assert took < 60, took
    assert after.ok and after.text == "answer after 0 earlier turns", after
    assert again.ok and again.text == "answer after 1 earlier turns", again
