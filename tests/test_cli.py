"""The `agentbot` console script answers --help and --version."""

from __future__ import annotations

import subprocess
import sys

import agentbot


def test_version_and_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentbot.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"agentbot {agentbot.__version__}"
    helped = subprocess.run(
        [sys.executable, "-m", "agentbot.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: agentbot" in helped.stdout
