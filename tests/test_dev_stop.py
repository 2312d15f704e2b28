"""`agentbot dev`'s Ctrl-C rules, with the clock in hand: one press finishes the turn, a second
aborts, and the copy of a press `uv run` passes on (it has no terminal: a SIGINT to the whole
process group reaches this process twice) is the same press, not a second one."""

from __future__ import annotations

import signal

from agentbot import dev_stop
from agentbot.dev_stop import STOPPING_MESSAGE, StopRequests


def test_a_sigint_passed_on_by_uv_run_is_the_same_press_and_a_later_one_aborts(monkeypatch) -> None:
    killed: list[int] = []
    monkeypatch.setattr(dev_stop, "kill_descendants", killed.append)  # this test's own children
    said: list[str] = []
    now = [100.0]
    stop = StopRequests(said.append, clock=lambda: now[0])
    stop.started()

    stop._on_sigint(signal.SIGINT, None)  # the press
    now[0] += 0.002
    stop._on_sigint(signal.SIGINT, None)  # `uv run`'s copy of it

    assert stop.finish.is_set() and not stop.abort.is_set() and said == [STOPPING_MESSAGE]
    assert killed == []

    now[0] += 1.0
    stop._on_sigint(signal.SIGINT, None)  # a second press

    assert stop.abort.is_set() and said[-1] == "aborting (Ctrl-C again)" and killed


def test_the_copy_uv_run_passes_on_200_ms_later_does_not_abort_the_turn(monkeypatch) -> None:
    """With piped input (`printf … | uv run agentbot dev`), `uv run` has no terminal and passes
    a Ctrl-C on to this process 200 ms after the press reached it (measured: 0.20 s). That copy
    must not turn one press into "aborting" and cut the turn the user wanted finished."""
    killed: list[int] = []
    monkeypatch.setattr(dev_stop, "kill_descendants", killed.append)
    said: list[str] = []
    now = [100.0]
    stop = StopRequests(said.append, clock=lambda: now[0])
    stop.started()

    stop._on_sigint(signal.SIGINT, None)  # the press
    now[0] += 0.3  # uv's copy, late on a busy machine
    stop._on_sigint(signal.SIGINT, None)

    assert said == [STOPPING_MESSAGE] and not stop.abort.is_set() and killed == []
