"""The house rules that tools can check: ruff clean everywhere, mypy strict on session-core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_finds_nothing() -> None:
    done = _run(sys.executable, "-m", "ruff", "check", ".", "--output-format", "concise")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_session_core_is_mypy_strict_clean() -> None:
    done = _run(sys.executable, "-m", "mypy", "packages/session-core/src")
    assert done.returncode == 0, done.stdout[-4000:]
