"""Each workspace member installs on its own from the lock and declares everything it imports."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from agentbot_testing import kept_dir

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))

# Imports every module of the package, so a dependency missing from its pyproject fails here.
_IMPORT_ALL = """
import importlib, pkgutil, sys
name = sys.argv[1]
# a Lambda function's module that reads its function's environment at import (the Telegram
# stack tests run it inside the local Lambda service)
LAMBDA_MODULES = {"agentbot_testing.telegram_stub_runtime"}
package = importlib.import_module(name)
for info in pkgutil.walk_packages(package.__path__, name + "."):
    if info.name not in LAMBDA_MODULES:
        importlib.import_module(info.name)
print("imported", name)
"""


def test_the_workspace_has_the_members_of_the_design() -> None:
    # the four of the design card, what the Telegram side shares (the runtime must not see it),
    # the stack `agentbot dev` and the tests run on, and the test doubles every member's tests share
    assert MEMBERS == [
        "agent-runtime",
        "agentbot-testing",
        "local-stack",
        "session-core",
        "sqs-consumer",
        "telegram-core",
        "telegram-producer",
    ]
    for member in MEMBERS:
        project = tomllib.loads((ROOT / "packages" / member / "pyproject.toml").read_text())["project"]
        assert project["name"] == member and project["version"]
        assert project["requires-python"] == ">=3.11"
        assert (ROOT / "packages" / member / "src" / member.replace("-", "_") / "py.typed").exists()


TESTED_MEMBERS = [member for member in MEMBERS if (ROOT / "packages" / member / "tests").is_dir()]


def _environment(member: str, kind: str) -> Path:
    """A member's environment, kept between runs outside the temp dir (uv's sync is exact: it
    removes what the lock does not give the member, so a kept one proves as much as a new one)
    and its bytecode with it: a new one compiled boto3, moto, the SDK and pytest each run."""
    checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]  # editable installs point here
    return kept_dir(checkout, f"{member}-{kind}")


def _sync(member: str, env: dict[str, str], *extra: str) -> None:
    command = ["uv", "sync", "--locked", "--package", member, "--quiet", *extra]
    synced = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if synced.returncode != 0:  # a kept environment a killed run left broken: once from scratch
        shutil.rmtree(env["UV_PROJECT_ENVIRONMENT"], ignore_errors=True)
        synced = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert synced.returncode == 0, synced.stderr


@pytest.mark.parametrize("member", MEMBERS)
def test_member_syncs_alone_from_the_lock_imports_and_its_tests_load_without_the_app(member: str) -> None:
    """The member alone (no dev group) imports every module it has; then with its dev group
    (the shared test support) it loads every test of `uv run --package NAME pytest
    packages/NAME`, and the app (agentbot) is not there."""
    alone, dev = _environment(member, "alone"), _environment(member, "dev")
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(alone)}
    env.pop("VIRTUAL_ENV", None)
    _sync(member, env, "--no-dev", "--all-extras")
    python = str(alone / "bin" / "python")
    done = subprocess.run(
        [python, "-c", _IMPORT_ALL, member.replace("-", "_")],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # only agent-runtime carries the SDK and its ~380 MiB CLI
    has_sdk = subprocess.run([python, "-c", "import claude_agent_sdk"], capture_output=True, check=False)
    assert (has_sdk.returncode == 0) == (member == "agent-runtime")
    if member not in TESTED_MEMBERS:
        return

    env["UV_PROJECT_ENVIRONMENT"] = str(dev)
    _sync(member, env)  # with its dev group
    python = str(dev / "bin" / "python")
    no_app = subprocess.run([python, "-c", "import agentbot"], capture_output=True, check=False)
    assert no_app.returncode != 0, f"{member}'s dev environment installs the app"
    collected = subprocess.run(
        [
            python,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",
            f"packages/{member}/tests",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-2000:]
    assert " tests collected" in collected.stdout or " test collected" in collected.stdout


def test_pytest_testpaths_are_exactly_the_test_folders() -> None:
    configured = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    folders = {f"packages/{member}/tests" for member in TESTED_MEMBERS} | {"tests"}
    assert set(configured["testpaths"]) == folders
