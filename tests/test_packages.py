"""Each workspace member installs on its own from the lock and declares everything it imports."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))

# Imports every module of the package, so a dependency missing from its pyproject fails here.
_IMPORT_ALL = """
import importlib, pkgutil, sys
name = sys.argv[1]
package = importlib.import_module(name)
for info in pkgutil.walk_packages(package.__path__, name + "."):
    importlib.import_module(info.name)
print("imported", name)
"""


def test_the_workspace_has_the_four_members_of_the_design() -> None:
    assert MEMBERS == ["agent-runtime", "session-core", "sqs-consumer", "telegram-producer"]
    for member in MEMBERS:
        project = tomllib.loads((ROOT / "packages" / member / "pyproject.toml").read_text())["project"]
        assert project["name"] == member and project["version"]
        assert project["requires-python"] == ">=3.11"
        assert (ROOT / "packages" / member / "src" / member.replace("-", "_") / "py.typed").exists()


@pytest.mark.parametrize("member", MEMBERS)
def test_member_syncs_alone_from_the_lock_and_imports(member: str, tmp_path: Path) -> None:
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}
    env.pop("VIRTUAL_ENV", None)
    synced = subprocess.run(
        ["uv", "sync", "--locked", "--package", member, "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    assert synced.returncode == 0, synced.stderr
    python = tmp_path / "venv" / "bin" / "python"
    done = subprocess.run(
        [str(python), "-c", _IMPORT_ALL, member.replace("-", "_")],
        capture_output=True, text=True, check=False, env={"PATH": os.environ["PATH"]},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # only agent-runtime carries the SDK and its ~380 MiB CLI
    has_sdk = subprocess.run(
        [str(python), "-c", "import claude_agent_sdk"], capture_output=True, check=False
    ).returncode == 0
    assert has_sdk == (member == "agent-runtime")
