"""The README's set-up works where pip is externally managed (Debian 12, Ubuntu 23.04+, Homebrew)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()

pytestmark = pytest.mark.slow


def _externally_managed_python() -> str:
    """A python3 whose pip refuses to install (PEP 668) if this machine has one, else python3."""
    candidates = ["/usr/bin/python3", "/usr/local/bin/python3", "/opt/homebrew/bin/python3"]
    for python in candidates:
        if not os.access(python, os.X_OK):
            continue
        marker = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if marker and (Path(marker) / "EXTERNALLY-MANAGED").exists():
            return python
    found = shutil.which("python3")
    assert found, "no python3 on PATH"
    return found


def test_the_set_up_is_two_commands_and_the_ci_runs_the_second() -> None:
    block = re.search(r"## Set-up\n.*?```bash\n(.*?)```", README, re.S)
    assert block, "README has no set-up block"
    commands = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    assert commands == ["pip install uv && uv run agentbot dev", "pip install uv && uv run pytest"]
    assert "uv run pytest" in (REPO / ".ci" / "run").read_text()
    assert (REPO / "LICENSE").read_text().startswith("MIT License")


def test_the_externally_managed_line_gives_a_working_uv(tmp_path: Path) -> None:
    lines = [line for line in README.splitlines() if line.startswith("python3 -m venv ")]
    assert len(lines) == 1, "README should state exactly one line for an externally managed pip"
    python = _externally_managed_python()
    # The user's shell: python3 is the system's, HOME is fresh, nothing of this test's venv.
    path = os.pathsep.join([str(Path(python).parent), "/usr/bin", "/bin"])
    env = {"HOME": str(tmp_path), "PATH": path, "LANG": "C.UTF-8"}
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE"):
        if name in os.environ:  # how this machine reaches a package index
            env[name] = os.environ[name]
    done = subprocess.run(
        ["bash", "-c", f"set -e\n{lines[0]}\nuv --version\ncommand -v uv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.splitlines()[-2].startswith("uv ")
    assert done.stdout.splitlines()[-1] == str(tmp_path / ".uv-venv" / "bin" / "uv")
