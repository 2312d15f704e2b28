"""The reaper around a local function worker ends the way its command ended, so the Lambda
service sees a crash as a crash (the same signal or exit code), with no traceback of its own."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        ("os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL),
        ("os.kill(os.getpid(), signal.SIGTERM)", -signal.SIGTERM),
        ("sys.exit(3)", 3),
    ],
)
def test_the_reaper_ends_the_way_its_command_ended(ending: str, expected: int) -> None:
    command = [sys.executable, "-c", f"import os, signal, sys; {ending}"]
    done = subprocess.run(
        [sys.executable, "-m", "local_stack._reaper", "--", *command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == expected, done.stderr
    assert "Traceback" not in done.stderr
