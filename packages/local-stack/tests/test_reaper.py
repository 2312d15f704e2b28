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


def test_the_reaper_starts_without_the_rest_of_the_stack() -> None:
    """It runs beside every function worker: it loads the process-tree helpers, not moto's
    server, boto3, msgspec or structlog (~0.2 s of CPU per worker before)."""
    probe = (
        "import sys, local_stack._reaper; print(sorted(m for m in "
        "('werkzeug', 'moto', 'boto3', 'botocore', 'msgspec', 'structlog', 'httpx') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_every_name_of_the_package_resolves() -> None:
    import local_stack

    for name in local_stack.__all__:
        assert getattr(local_stack, name) is not None, name
    assert local_stack.LocalLambda.__module__ == "local_stack._lambda"
